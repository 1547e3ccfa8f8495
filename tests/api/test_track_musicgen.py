"""``model: "musicgen"`` through the API with a tiny, randomly initialised MusicGen built here (a 1-layer T5
encoder, a small EnCodec and decoder, saved with ``save_pretrained``): loaded from ``<models_dir>/musicgen/``
with ``local_files_only``, generated in overlapping windows, resampled and mastered; track.json reports what
the audio measures. Nothing is downloaded."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
from _api_helpers import assert_problem, make_settings
from fastapi.testclient import TestClient

from cadenza.api.app import create_app

WORDS = ["lo", "fi", "hip", "hop", "jazz", "rock", "a", "minor", "major", "bpm", "piano", "drums", "seconds"]


def build_tiny_musicgen(path: Path) -> None:
    import torch
    from transformers import (
        EncodecConfig,
        EncodecFeatureExtractor,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
        T5Config,
        T5Tokenizer,
    )

    text = T5Config(
        vocab_size=64, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, pad_token_id=0, eos_token_id=1
    )
    audio = EncodecConfig(
        sampling_rate=32000,
        audio_channels=1,
        num_filters=4,
        num_residual_layers=1,
        upsampling_ratios=[8, 5, 4, 4],
        codebook_size=32,
        codebook_dim=8,
        hidden_size=8,
        target_bandwidths=[0.5],  # 50 Hz × log2(32) bits × 2 codebooks = 0.5 kbps: the decoder's 2 codebooks
        num_lstm_layers=1,
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=32,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=32,
        num_codebooks=2,
        max_position_embeddings=256,
        pad_token_id=32,
        bos_token_id=32,
    )
    config = MusicgenConfig(
        text_encoder=text.to_dict(),
        audio_encoder=audio.to_dict(),
        decoder=decoder.to_dict(),
        decoder_start_token_id=32,
        pad_token_id=32,
    )
    torch.manual_seed(0)
    MusicgenForConditionalGeneration(config).save_pretrained(path)
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)] + [("\u2581" + w, -3.0) for w in WORDS]
    processor = MusicgenProcessor(
        feature_extractor=EncodecFeatureExtractor(feature_size=1, sampling_rate=32000),
        tokenizer=T5Tokenizer(vocab=vocab, extra_ids=0),
    )
    processor.save_pretrained(path)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("musicgen")
    build_tiny_musicgen(root / "models" / "musicgen" / "tiny")
    # 4 s windows conditioned on 1.5 s of the audio so far: a 9 s track takes three windows
    engines = {"track": {"musicgen_window_s": 4, "musicgen_overlap_s": 1.5, "musicgen_name": "tiny"}}
    settings = make_settings(root, workers=1, engines=engines)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_a_local_musicgen_makes_a_mastered_track_through_the_api(client: TestClient) -> None:
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert models["musicgen:tiny"]["weights_present"] is True
    body = {"prompt": "lo fi hip hop, 84 bpm, a minor", "duration_s": 9, "model": "musicgen", "seed": 3}
    job = client.post("/v1/tracks", json=body, headers={"Prefer": "wait=60"}).json()
    if job["status"] not in ("completed", "failed"):
        job = client.get(f"/v1/jobs/{job['id']}", headers={"Prefer": "wait=60"}).json()
    assert job["status"] == "completed", job
    assert {o["name"] for o in job["outputs"]} == {"track.wav", "track.mp3", "track.json"}
    files = f"/v1/jobs/{job['id']}/files"
    wav = client.get(f"{files}/track.wav").content
    info = sf.info(io.BytesIO(wav))
    assert info.frames == 9 * 44100 and info.samplerate == 44100 and info.channels == 2
    doc = client.get(f"{files}/track.json").json()
    assert doc["model"] == "musicgen:tiny" and doc["measured"]["model_sample_rate"] == 32000
    assert abs(doc["measured"]["integrated_lufs"] + 14) <= 0.5 and doc["measured"]["true_peak_dbtp"] <= -1.0
    assert "tempo_bpm_from_audio" in doc["measured"] and doc["measured"]["key_from_audio"]
    assert doc["requested"]["tempo_bpm"] == 84
    again = client.post("/v1/tracks", json=body, headers={"Prefer": "wait=60"}).json()
    if again["status"] != "completed":
        again = client.get(f"/v1/jobs/{again['id']}", headers={"Prefer": "wait=60"}).json()
    assert client.get(f"/v1/jobs/{again['id']}/files/track.wav").content == wav  # same request + seed


def test_a_missing_musicgen_folder_is_a_clear_422(client: TestClient) -> None:
    problem = assert_problem(client.post("/v1/tracks", json={"prompt": "x", "model": "musicgen:large"}), 422)
    assert "musicgen/large" in problem["detail"] and "config.json" in problem["detail"]
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert "musicgen:large" not in models  # only folders that exist (or the default) are listed
