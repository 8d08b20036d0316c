"""api/openapi.yaml itself: well formed, complete, and as strict as the contract."""

import json
import unittest

import jsonschema

import harness
import openapi

ERROR_CODES = {
    "VALIDATION_FAILED", "UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND", "ROUTE_NOT_FOUND",
    "METHOD_NOT_ALLOWED", "CONFLICT", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE",
    "HEADERS_TOO_LARGE", "TOO_MANY_REQUESTS", "AUDIT_UNAVAILABLE", "DEPENDENCY_UNAVAILABLE",
    "INTERNAL", "PRECONDITION_FAILED", "PRECONDITION_REQUIRED", "IDEMPOTENCY_KEY_REUSED",
    "MAINTENANCE",
}
AUDIT_FIELDS = {
    "pk", "sk", "gsi1pk", "gsi1sk", "action", "status", "userId", "productId", "requestId",
    "correlationId", "ts", "expiresAt", "principal", "apiRequestId", "before", "after",
    "configKey", "tenantId",
}
HDRS = {"x-request-id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "x-correlation-id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "cache-control": "no-store", "content-type": "application/json",
        "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
        "referrer-policy": "no-referrer", "x-content-type-options": "nosniff"}


def err(code, details=None):
    e = {"code": code, "message": "m", "requestId": HDRS["x-request-id"]}
    if details is not None:
        e["details"] = details
    return json.dumps({"error": e}).encode()


class OpenApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.spec = harness.spec()

    def test_document(self):
        self.assertEqual(self.spec.raw["openapi"][:4], "3.1.")
        self.assertEqual(set(self.spec.raw["paths"]), {"/price", "/audit", "/health", "/ready", "/metrics", "/products",
                          "/products/{id}", "/products/{id}/price", "/products/{id}/price-history",
                          "/config", "/config/{key}", "/ofrep/v1/evaluate/flags/{key}",
                          "/ofrep/v1/evaluate/flags"})
        for s in self.spec.schemas():
            jsonschema.Draft202012Validator.check_schema(s)

    def test_every_response_has_the_common_headers(self):
        responses = list(self.spec.any_route.values())
        for item in self.spec.doc["paths"].values():
            for op in item.values():
                responses += list(op["responses"].values())
        for r in responses:
            for h in ("X-Request-Id", "X-Correlation-Id", "Cache-Control"):
                self.assertTrue(r["headers"][h]["required"], r["description"])

    def test_error_codes(self):
        enum = self.spec.doc["components"]["schemas"]["ErrorCode"]["enum"]
        self.assertEqual(set(enum), ERROR_CODES)

    def test_audit_record_fields(self):
        rec = self.spec.doc["components"]["schemas"]["AuditRecord"]
        self.assertEqual(set(rec["properties"]), AUDIT_FIELDS)
        # userId: look-ups only; before/after: writes only (CONTRACT §8).
        self.assertEqual(set(rec["required"]),
                         AUDIT_FIELDS - {"principal", "apiRequestId", "userId", "before", "after", "tenantId",
                                         "productId", "configKey"})
        # a record names its product or, for a config change, its key
        self.assertEqual(rec["oneOf"], [{"required": ["productId"]}, {"required": ["configKey"]}])
        self.assertIs(rec["additionalProperties"], False)

    def test_validator_accepts_and_rejects(self):
        v = self.spec.validate
        ok = b'{"productId":"PROD-101","price":99.99,"currency":"USD"}'
        v("GET", "/price", 200, HDRS, ok)
        v("GET", "/price", 400, HDRS, err("VALIDATION_FAILED", [{"field": "id", "reason": "r"}]))
        v("GET", "/price", 404, HDRS, err("NOT_FOUND"))
        v("GET", "/price", 503, HDRS, err("AUDIT_UNAVAILABLE"))
        v("GET", "/nope", 404, HDRS, err("ROUTE_NOT_FOUND"))
        v("POST", "/price", 405, dict(HDRS, allow="GET"), err("METHOD_NOT_ALLOWED"))
        bad = [
            ("GET", "/price", 200, HDRS, b'{"productId":"PROD-101","price":"99.99","currency":"USD"}'),
            ("GET", "/price", 200, HDRS, b'{"productId":"PROD-101","price":99.99,"currency":"usd"}'),
            ("GET", "/price", 200, HDRS, ok[:-1] + b',"x":1}'),
            ("GET", "/price", 200, dict(HDRS, **{"cache-control": "max-age=5"}), ok),
            ("GET", "/price", 200, {k: v for k, v in HDRS.items() if k != "x-request-id"}, ok),
            ("GET", "/price", 200, {k: v for k, v in HDRS.items() if k != "content-security-policy"}, ok),
            ("GET", "/price", 429, HDRS, err("TOO_MANY_REQUESTS")),
            ("GET", "/price", 201, HDRS, ok),
            ("GET", "/price", 400, HDRS, err("VALIDATION_FAILED")),
            ("GET", "/price", 404, HDRS, err("ROUTE_NOT_FOUND")),
            ("GET", "/price", 503, HDRS, b'{"error":{"code":"AUDIT_UNAVAILABLE","message":"m","requestId":"r"},"price":1}'),
            ("GET", "/nope", 404, HDRS, err("NOT_FOUND")),
            ("GET", "/nope", 405, dict(HDRS, allow="GET"), err("METHOD_NOT_ALLOWED")),
            ("POST", "/price", 405, HDRS, err("METHOD_NOT_ALLOWED")),
            ("POST", "/price", 404, HDRS, err("ROUTE_NOT_FOUND")),
            ("GET", "/price", 400, HDRS, err("NO_SUCH_CODE", [{"field": "id", "reason": "r"}])),
            ("GET", "/health", 200, dict(HDRS, **{"content-type": "text/html"}), b"<p>"),
            ("GET", "/health", 200, HDRS, b'{"status":"ready"}'),
            ("GET", "/nope", 400, HDRS, err("NOT_FOUND")),
        ]
        for case in bad:
            with self.subTest(case=case[:3]):
                with self.assertRaises(openapi.SpecError):
                    v(*case)


if __name__ == "__main__":
    unittest.main()
