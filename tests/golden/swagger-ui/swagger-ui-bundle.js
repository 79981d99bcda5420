/* swagger-ui-bundle.js of swagger-ui-dist 5.35.0, shrunk for the golden test: the original is 1732839 bytes. */
