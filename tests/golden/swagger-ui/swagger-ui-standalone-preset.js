/* swagger-ui-standalone-preset.js of swagger-ui-dist 5.35.0, shrunk for the golden test: the original is 267767 bytes. */
