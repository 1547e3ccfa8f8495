"""OpenAPI examples of the drums engine, taken from a real run.

A 4-bar J Dilla drums job (seed 7, 90 BPM, default checkpoint), whose output sizes, hashes, note counts
and result metadata are those the engine wrote; the model and the style from the built-in registry and
catalog. The conformance and OpenAPI tests validate each against its model.
"""

from __future__ import annotations

from typing import Any

_JOB_ID = "3f0c2a9e-8b1d-4c6e-9a27-5d4e1f0b7c82"
_JOB_URL = f"/v1/jobs/{_JOB_ID}"

JOB: dict[str, Any] = {
    "id": _JOB_ID,
    "kind": "drums",
    "status": "completed",
    "params": {
        "producer_style": "J Dilla",
        "bars": 4,
        "tempo": 90.0,
        "time_signature": [4, 4],
        "humanize": True,
        "pattern_type": "verse",
        "temperature": 0.9,
        "top_k": 0,
        "top_p": 1.0,
        "reference_mode": "feel",
        "seed": 7,
        "formats": ["midi"],
    },
    "progress": 100.0,
    "stage": None,
    "sequence": 11,
    "owner": "key_5b0e9f3c21a4d786",
    "priority": 0,
    "attempts": 1,
    "created_at": "2026-11-21T13:05:12.482913Z",
    "started_at": "2026-11-21T13:05:12.514027Z",
    "completed_at": "2026-11-21T13:05:14.052310Z",
    "queue_duration_s": 0.031,
    "run_duration_s": 1.538,
    "error": None,
    "outputs": [
        {
            "name": "groove.mid",
            "media_type": "audio/midi",
            "size_bytes": 581,
            "sha256": "96038d6a3381ee001cc2418dc494434677e7237b83a547860833c01c114ac3e4",
            "metadata": {"ppq": 480, "notes": 67},
            "download_name": "j-dilla_90bpm_4bars_s7_3f0c2a9e.mid",
            "url": f"{_JOB_URL}/files/groove.mid",
        },
        {
            "name": "pattern.json",
            "media_type": "application/json",
            "size_bytes": 13739,
            "sha256": "1e8e9ce393fe6b46c8a9a653a654b80c73722048648eea33874e02d81c906885",
            "metadata": {"hits": 67},
            "download_name": "j-dilla_90bpm_4bars_s7_pattern_3f0c2a9e.json",
            "url": f"{_JOB_URL}/files/pattern.json",
        },
    ],
    "result": {
        "style": "J Dilla",
        "bars": 4,
        "tempo_bpm": 90.0,
        "time_signature": [4, 4],
        "seed": 7,
        "model_version": "groove-transformer-1.0",
        "pattern_type": "verse",
        "humanize": True,
        "steps_generated": 64,
        "hits": 67,
        "groove_duration_s": 10.666667,
        "compute_s": 1.472,
        "warnings": [],
    },
    "inputs": None,
    "metadata": None,
    "retry_of": None,
    "retried_by": None,
    "batch_id": None,
    "webhook": None,
    "webhook_events_filter": None,
    "queue_position": None,
    "eta_s": None,
    "url": _JOB_URL,
    "links": {"self": _JOB_URL, "events": f"{_JOB_URL}/events", "cancel": f"{_JOB_URL}/cancel"},
}

MODEL: dict[str, Any] = {
    "name": "groove-transformer",
    "engine": "drums",
    "version": "groove-transformer-1.0",
    "description": (
        "Groove transformer: 16th-note drum grooves with velocity and micro-timing, conditioned on GMD style, "
        "beat/fill, tempo and metric position"
    ),
    "licence": "CC BY 4.0 (weights derived from GMD; credit Gillick, Roberts, Engel, Eck, Bamman, ICML 2019)",
    "data_source": "Groove MIDI Dataset v1.0.0 (Gillick et al., ICML 2019), CC BY 4.0",
    "size_bytes": 2099909,
    "weights_present": True,
    "missing_files": [],
    "path": "/srv/cadenza/src/cadenza/engines/drums/checkpoints/groove_transformer.pt",
    "loaded": True,
}

_HTDEMUCS: dict[str, Any] = {
    "name": "htdemucs",
    "engine": "separation",
    "version": "demucs-4",
    "description": "Hybrid Transformer Demucs v4, ~9.0 dB SDR on MUSDB18-HQ",
    "licence": "MIT",
    "data_source": "MUSDB18-HQ plus 800 internal songs (htdemucs*) / MUSDB18 plus extra data (mdx_extra); Meta AI",
    "size_bytes": None,
    "weights_present": False,
    "missing_files": [
        "demucs/htdemucs.yaml (copy of demucs/remote/htdemucs.yaml in the installed demucs package)",
        "demucs/955717e8-8726e21a.th "
        "(from https://dl.fbaipublicfiles.com/demucs/hybrid_transformer/955717e8-8726e21a.th)",
    ],
    "path": "/var/lib/cadenza/models/demucs",
    "loaded": False,
}

STYLE: dict[str, Any] = {
    "name": "J Dilla",
    "model_id": "groove-transformer",
    "description": (
        'Loose, "drunk" boom-bap feel after J Dilla\'s MPC programming: swung 16ths (~58 % MPC swing), '
        "kick pushed early, snare dragged late, hi-hats loose; soft ghost notes."
    ),
    "preferred_tempo_range": [80.0, 98.0],
    "conditioning": {"hiphop": 0.7, "soul": 0.3},
    "humanization": {
        "swing_percent": 58.0,
        "microtiming_ms": {
            "kick": {"mean_ms": -14.0, "std_ms": 8.0},
            "snare": {"mean_ms": 22.0, "std_ms": 7.0},
            "closed_hihat": {"mean_ms": 8.0, "std_ms": 13.0},
            "open_hihat": {"mean_ms": 8.0, "std_ms": 13.0},
        },
        "ghost_note_probability": 0.12,
        "ghost_velocity_range": [22, 38],
        "velocity_std": 9.0,
        "model_timing_scale": 1.0,
        "velocity_floor": 20,
        "velocity_min": {"crash": 72},
        "downbeat_kick_min": 80,
    },
    "rules": {
        "backbeat": True,
        "half_time_snare": False,
        "one_drop": False,
        "four_on_the_floor": False,
        "hihat_grid": None,
        "hihat_rolls": None,
        "kick_density": 0.9,
        "cross_stick": False,
        "ride_instead_of_hihat": False,
    },
}

STYLE_LIST: dict[str, Any] = {"count": 1, "styles": [STYLE]}
