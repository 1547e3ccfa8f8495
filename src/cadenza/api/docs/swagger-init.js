// Starts Swagger UI on /docs with the settings of the page's JSON block (#swagger-ui-config). A file, not an
// inline script: the page's Content-Security-Policy runs only scripts served by this server.
const config = JSON.parse(document.getElementById("swagger-ui-config").textContent);
window.ui = SwaggerUIBundle({
  ...config,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
