// Blocking head script: small configuration the page needs before rendering.
window.DEMO = { started: Date.now(), sse: "/_sse?n=10&interval_ms=500" };
document.documentElement.className += " js";
