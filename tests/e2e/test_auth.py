"""Access control: AUTH_MODE=jwt on serve (HS256 secret, RS256/ES256 JWKS made
with the openssl CLI), `pricing token`, the loopback rule of AUTH_MODE=none,
and AUTH_MODE=apigw on invoke with HTTP API 2.0 authorizer claims."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

import harness
from harness import new_user, run_cli

PRICE_BODY = b'{"productId":"PROD-101","price":99.99,"currency":"USD"}'
SECRET = b"e2e-secret-e2e-secret-e2e-secret-0123456789"


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_json(obj):
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def claims(sub="svc-e2e", scope="price:read", ttl=600, **extra):
    now = int(time.time())
    c = {"sub": sub, "exp": now + ttl, "iat": now}
    if scope is not None:
        c["scope"] = scope
    c.update(extra)
    return c


def hs256(payload, key=SECRET, header=None):
    h = header or {"alg": "HS256", "typ": "JWT"}
    signing = (b64u_json(h) + "." + b64u_json(payload)).encode()
    return signing.decode() + "." + b64u(hmac.new(key, signing, hashlib.sha256).digest())


def openssl(*args, stdin=None):
    p = subprocess.run(["openssl"] + list(args), input=stdin, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), p.stderr.decode()))
    return p.stdout


def der_ecdsa_to_raw(der):
    """DER SEQUENCE { INTEGER r, INTEGER s } -> r || s, 32 bytes each."""
    if der[0] != 0x30:
        raise AssertionError("not a DER sequence")
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        if der[i] != 0x02:
            raise AssertionError("not a DER integer")
        n = der[i + 1]
        v = der[i + 2 : i + 2 + n].lstrip(b"\x00")
        out += v.rjust(32, b"\x00")
        i += 2 + n
    return out


class Keys:
    """An RSA 2048 and an EC P-256 key made with the openssl CLI, and their JWKS."""

    def __init__(self, d):
        self.rsa = str(d / "rsa.pem")
        self.ec = str(d / "ec.pem")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", self.rsa)
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.ec)
        modulus = openssl("rsa", "-in", self.rsa, "-noout", "-modulus").decode().strip()
        n = bytes.fromhex(modulus.split("=", 1)[1])
        self.rsa_pub_pem = openssl("pkey", "-in", self.rsa, "-pubout")
        ec_der = openssl("pkey", "-in", self.ec, "-pubout", "-outform", "DER")
        point = ec_der[-65:]
        if point[0] != 4:
            raise AssertionError("unexpected EC public key encoding")
        self.jwks = {
            "keys": [
                {"kty": "RSA", "kid": "rsa-e2e", "use": "sig", "alg": "RS256",
                 "n": b64u(n), "e": b64u((65537).to_bytes(3, "big"))},
                {"kty": "EC", "kid": "ec-e2e", "crv": "P-256",
                 "x": b64u(point[1:33]), "y": b64u(point[33:65])},
            ]
        }

    def sign(self, alg, kid, payload):
        header = {"alg": alg, "kid": kid, "typ": "JWT"}
        signing = (b64u_json(header) + "." + b64u_json(payload)).encode()
        key = self.rsa if alg == "RS256" else self.ec
        sig = openssl("dgst", "-sha256", "-sign", key, stdin=signing)
        if alg == "ES256":
            sig = der_ecdsa_to_raw(sig)
        return signing.decode() + "." + b64u(sig)


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


class JwtServeTest(harness.ServerCase):
    """serve --auth jwt with an HS256 secret file and a JWKS file."""

    @classmethod
    def setUpClass(cls):
        cls.keydir = Path(tempfile.mkdtemp(prefix="px-e2e-auth-"))
        try:
            cls.secret_file = cls.keydir / "jwt.secret"
            cls.secret_file.write_bytes(SECRET + b"\n")
            cls.keys = Keys(cls.keydir)
            cls.jwks_file = cls.keydir / "jwks.json"
            cls.jwks_file.write_text(json.dumps(cls.keys.jwks))
            cls.server_env = {"AUTH_MODE": "jwt", "AUTH_JWT_SECRET_FILE": str(cls.secret_file)}
            cls.server_args = ("--jwks-file", str(cls.jwks_file))
            super().setUpClass()
        except BaseException:
            shutil.rmtree(str(cls.keydir), ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(str(cls.keydir), ignore_errors=True)

    def assertError(self, r, status, code):
        self.assertStatus(r, status)
        self.assertEqual(r.json()["error"]["code"], code, r)

    def test_no_token_401(self):
        user = new_user()
        for target in ("/price?id=PROD-101&userId=%s" % user, "/audit?userId=%s" % user):
            with self.subTest(target=target):
                r = self.server.get(target)
                self.assertError(r, 401, "UNAUTHORIZED")
                self.assertEqual(r.header("www-authenticate"), 'Bearer realm="pricing"')
        r = self.server.get("/price?id=PROD-101&userId=%s" % user,
                            headers={"Authorization": "Basic dXNlcjpwYXNz"})
        self.assertError(r, 401, "UNAUTHORIZED")
        self.assertEqual(self.stores.records(user=user), [])

    def test_bad_tokens_401(self):
        user = new_user()
        good = hs256(claims())
        head, payload, sig = good.split(".")
        forged = hs256(claims(scope="price:read audit:read"), key=b"x" * 40)
        cases = {
            "garbage": "not-a-token",
            "signature of another token": "%s.%s.%s" % (head, b64u_json(claims(sub="admin")), sig),
            "wrong secret": forged,
            "expired": hs256(claims(ttl=-3600)),
            "not yet valid": hs256(claims(nbf=int(time.time()) + 3600)),
            "alg none": b64u_json({"alg": "none"}) + "." + payload + ".",
            "alg none signed": hs256(claims(), header={"alg": "none"}),
            "crit": hs256(claims(), header={"alg": "HS256", "crit": ["exp"]}),
            "padded": good + "=",
            "aud without AUTH_AUDIENCE": hs256(claims(aud="pricing")),
            "unknown kid": self.keys.sign("RS256", "rsa-other", claims()),
            "HS256 with the RSA public key as secret": hs256(
                claims(), key=self.keys.rsa_pub_pem, header={"alg": "HS256", "kid": "rsa-e2e"}),
            "RS256 header on the EC key": self.keys.sign("RS256", "ec-e2e", claims()),
            "oversized": hs256(claims(pad="a" * 9000)),
        }
        for name, tok in cases.items():
            with self.subTest(name=name):
                r = self.server.price("PROD-101", user, headers=bearer(tok))
                self.assertError(r, 401, "UNAUTHORIZED")
                self.assertTrue(
                    r.header("www-authenticate").startswith(
                        'Bearer realm="pricing", error="invalid_token"'), r.header_list)
        r = self.server.price("PROD-101", user, headers=bearer(hs256(claims(ttl=-3600))))
        self.assertIn("expired", r.header("www-authenticate"))
        self.assertEqual(self.stores.records(user=user), [])
        # the tokens never reach the logs
        logs = self.server.stdout() + self.server.stderr()
        self.assertNotIn(sig, logs)
        self.assertNotIn(forged.split(".")[2], logs)

    def test_without_permission_403(self):
        user = new_user()
        tok = hs256(claims(scope="audit:read"))
        r = self.server.price("PROD-101", user, headers=bearer(tok))
        self.assertError(r, 403, "FORBIDDEN")
        self.assertEqual(
            r.header("www-authenticate"),
            'Bearer realm="pricing", error="insufficient_scope", scope="price:read"')
        r = self.server.get("/audit?userId=%s" % user, headers=bearer(hs256(claims())))
        self.assertError(r, 403, "FORBIDDEN")
        self.assertEqual(self.stores.records(user=user), [])

    def test_access_decided_before_validation(self):
        # a caller who may not use the route learns nothing about its parameters
        bad_query = "/price?id=PROD-101&userId=alice&extra=1"
        self.assertError(self.server.get(bad_query), 401, "UNAUTHORIZED")
        r = self.server.get(bad_query, headers=bearer(hs256(claims(scope="audit:read"))))
        self.assertError(r, 403, "FORBIDDEN")
        r = self.server.get(bad_query, headers=bearer(hs256(claims())))
        self.assertError(r, 400, "VALIDATION_FAILED")
        # routing comes first: an unknown path is still 404
        self.assertError(self.server.get("/nope"), 404, "ROUTE_NOT_FOUND")
        # the server's own routes stay open
        self.assertStatus(self.server.get("/health"), 200)

    def test_good_token_and_principal(self):
        user = new_user()
        sub = "svc-%s" % new_user()[:8]
        tok = hs256(claims(sub=sub, scope="price:read audit:read"))
        r = self.server.price("PROD-101", user, headers=bearer(tok))
        self.assertStatus(r, 200)
        self.assertEqual(r.body, PRICE_BODY)
        # the embedded store, through `pricing audit query` (JSON lines)
        recs = self.stores.records(user=user)
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual(recs[0]["principal"], sub)
        self.assertEqual(recs[0]["userId"], user)
        self.assertEqual(recs[0]["requestId"], r.request_id)
        # and GET /audit (JSON over HTTP)
        r = self.server.get("/audit?userId=%s" % user, headers=bearer(tok))
        self.assertStatus(r, 200)
        items = r.json()["items"]
        self.assertEqual([x["principal"] for x in items], [sub])
        # a not-found look-up is audited with its principal too
        self.assertStatus(self.server.price("NOPE-1", user, headers=bearer(tok)), 404)
        self.assertEqual([x.get("principal") for x in self.stores.records(user=user)], [sub, sub])

    def test_roles_claim(self):
        user = new_user()
        tok = hs256(claims(sub="role-user", scope=None, roles=["price:read"]))
        self.assertStatus(self.server.price("PROD-101", user, headers=bearer(tok)), 200)
        r = self.server.get("/audit?userId=%s" % user, headers=bearer(tok))
        self.assertError(r, 403, "FORBIDDEN")
        self.assertEqual(self.stores.records(user=user)[0]["principal"], "role-user")

    def test_rs256_and_es256_from_jwks(self):
        for alg, kid in (("RS256", "rsa-e2e"), ("ES256", "ec-e2e")):
            with self.subTest(alg=alg):
                user = new_user()
                tok = self.keys.sign(alg, kid, claims(sub="jwks-" + alg.lower()))
                r = self.server.price("PROD-101", user, headers=bearer(tok))
                self.assertStatus(r, 200)
                self.assertEqual(r.body, PRICE_BODY)
                self.assertEqual(self.stores.records(user=user)[0]["principal"],
                                 "jwks-" + alg.lower())
                # one byte of the payload changed: the signature no longer holds
                h, p, s = tok.split(".")
                other = b64u_json(claims(sub="jwks-admin"))
                r = self.server.price("PROD-101", user, headers=bearer("%s.%s.%s" % (h, other, s)))
                self.assertStatus(r, 401)

    def test_pricing_token_round_trip(self):
        user = new_user()
        r = run_cli(["token", "--sub", "cli-user", "--scope", "price:read audit:read",
                     "--ttl", "5m", "--secret-file", str(self.secret_file)])
        self.assertEqual(r.rc, 0, r)
        tok = r.stdout.strip()
        self.assertEqual(tok.count("."), 2)
        head = json.loads(base64.urlsafe_b64decode(tok.split(".")[0] + "=="))
        self.assertEqual(head["alg"], "HS256")
        body = json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=" * 3))
        self.assertEqual(body["sub"], "cli-user")
        self.assertEqual(body["scope"], "price:read audit:read")
        self.assertLessEqual(abs(body["exp"] - time.time() - 300), 5)
        self.assertStatus(self.server.price("PROD-101", user, headers=bearer(tok)), 200)
        self.assertStatus(self.server.get("/audit?userId=%s" % user, headers=bearer(tok)), 200)
        self.assertEqual(self.stores.records(user=user)[0]["principal"], "cli-user")

        # the secret file from the environment, as serve reads it
        r = run_cli(["token", "--sub", "env-user", "--scope", "audit:read"],
                    env={"AUTH_JWT_SECRET_FILE": str(self.secret_file)})
        self.assertEqual(r.rc, 0, r)
        r2 = self.server.price("PROD-101", user, headers=bearer(r.stdout.strip()))
        self.assertStatus(r2, 403)
        # an aud the server does not expect is refused
        r = run_cli(["token", "--sub", "x", "--aud", "elsewhere", "--secret-file",
                     str(self.secret_file)])
        self.assertEqual(r.rc, 0, r)
        self.assertStatus(self.server.price("PROD-101", user, headers=bearer(r.stdout.strip())), 401)

    def test_pricing_token_usage_errors(self):
        short = self.keydir / "short.secret"
        short.write_bytes(b"too-short\n")
        cases = [
            ["token"],
            ["token", "--sub", "a", "--secret-file", str(self.secret_file), "--ttl", "0"],
            ["token", "--sub", "a", "--secret-file", str(self.secret_file), "--ttl", "1y"],
            ["token", "--sub", "a", "--secret-file", str(self.keydir / "missing")],
            ["token", "--sub", "a", "--secret-file", str(short)],
            ["token", "--sub", "a"],
            ["token", "--sub", "", "--secret-file", str(self.secret_file)],
            ["token", "--sub", "a", "--bogus"],
        ]
        for args in cases:
            with self.subTest(args=args):
                r = run_cli(args)
                self.assertEqual(r.rc, 2, r)
                self.assertEqual(r.stdout, "")
                self.assertTrue(r.stderr.strip(), r)
        self.assertEqual(run_cli(["token", "--help"]).rc, 0)


class ServeStartupTest(harness.StoresCase):
    """AUTH_MODE=none binds loopback only, unless --insecure-no-auth."""

    def serve_fails(self, args, env=None):
        port = str(harness.free_port())
        r = run_cli(["serve", "--port", port] + self.stores.flags() + args, env=env, timeout=30)
        self.assertEqual(r.rc, 2, r)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r)
        return r

    def test_non_loopback_without_auth_exits_2(self):
        for host in ("0.0.0.0", "::"):
            with self.subTest(host=host):
                r = self.serve_fails(["--host", host])
                self.assertIn("--insecure-no-auth", r.stderr)
        r = self.serve_fails(["--host", "0.0.0.0"], env={"AUTH_MODE": "none"})
        self.assertIn("loopback", r.stderr)

    def test_insecure_no_auth_warns_on_every_start(self):
        server = harness.Server(self.stores, args=["--host", "0.0.0.0", "--insecure-no-auth"])
        for _ in range(2):
            server.start()
            try:
                r = server.price("PROD-101", new_user())
                self.assertEqual(r.status, 200)
            finally:
                server.stop_ok()
            warns = [json.loads(l) for l in server.log_lines() if '"warn"' in l]
            self.assertTrue(any("without access control" in w.get("msg", "") for w in warns),
                            server.log_lines()[:5])

    def test_bad_auth_settings_exit_2(self):
        d = Path(tempfile.mkdtemp(prefix="px-e2e-auth-"))
        try:
            short = d / "short"
            short.write_bytes(b"short\n")
            jwks = d / "jwks.json"
            jwks.write_text('{"keys":[{"kty":"RSA","kid":"k","n":"AQAB","e":"AQAB"}]}')
            cases = [
                (["--auth", "apigw"], "apigw"),
                (["--auth", "jwt"], "AUTH_JWT_SECRET_FILE"),
                (["--auth", "jwt", "--jwt-secret-file", str(short)], "AUTH_JWT_SECRET_FILE"),
                (["--auth", "jwt", "--jwt-secret-file", str(d / "missing")], "AUTH_JWT_SECRET_FILE"),
                (["--auth", "jwt", "--jwks-file", str(jwks)], "AUTH_JWKS_FILE"),
                (["--auth", "oauth"], "--auth"),
                (["--auth", "jwt", "--jwt-secret-file", str(short), "--jwt-clock-skew", "601"],
                 "--jwt-clock-skew"),
            ]
            for args, needle in cases:
                with self.subTest(args=args):
                    r = self.serve_fails(["--host", "127.0.0.1"] + args)
                    self.assertIn(needle, r.stderr)
        finally:
            shutil.rmtree(str(d), ignore_errors=True)


def v2_event(user, claims_=None, headers=None):
    ev = {
        "version": "2.0",
        "routeKey": "GET /price",
        "rawPath": "/price",
        "rawQueryString": "id=PROD-101&userId=%s" % user,
        "headers": dict({"host": "localhost"}, **(headers or {})),
        "requestContext": {
            "http": {"method": "GET", "path": "/price", "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1"},
            "requestId": "e2e-" + new_user(),
            "routeKey": "GET /price",
            "stage": "$default",
        },
        "isBase64Encoded": False,
    }
    if claims_ is not None:
        ev["requestContext"]["authorizer"] = {"jwt": {"claims": claims_, "scopes": None}}
    return ev


class InvokeApigwTest(harness.StoresCase):
    """invoke with HTTP API 2.0 events: authorizer claims under AUTH_MODE=apigw."""

    def invoke(self, event, env):
        r = run_cli(["invoke", "price-fetcher", "--event", "-"] + self.stores.flags(),
                    env=env, stdin=json.dumps(event))
        self.assertEqual(r.rc, 0, r)
        doc, headers, body = harness.check_invoke(r.stdout, "GET", "/price")
        return doc["statusCode"], body

    def test_claims_200_and_principal(self):
        user = new_user()
        ev = v2_event(user, {"sub": "apigw-client", "scope": "price:read", "iss": "https://idp"})
        status, body = self.invoke(ev, {"AUTH_MODE": "apigw"})
        self.assertEqual(status, 200)
        self.assertEqual(body, PRICE_BODY)
        recs = self.stores.records(user=user)
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual(recs[0]["principal"], "apigw-client")

    def test_without_claims_403(self):
        user = new_user()
        for env in ({"AUTH_MODE": "apigw"},
                    # inside Lambda apigw is the default
                    {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:1"}):
            with self.subTest(env=env):
                status, body = self.invoke(v2_event(user), env)
                self.assertEqual(status, 403)
                self.assertEqual(json.loads(body)["error"]["code"], "FORBIDDEN")
        # claims without the permission
        status, _ = self.invoke(v2_event(user, {"sub": "c", "scope": "audit:read"}),
                                {"AUTH_MODE": "apigw"})
        self.assertEqual(status, 403)
        self.assertEqual(self.stores.records(user=user), [])

    def test_jwt_mode_on_invoke(self):
        d = Path(tempfile.mkdtemp(prefix="px-e2e-auth-"))
        try:
            secret = d / "s"
            secret.write_bytes(SECRET)
            env = {"AUTH_MODE": "jwt", "AUTH_JWT_SECRET_FILE": str(secret)}
            user = new_user()
            ev = v2_event(user, headers={"authorization": "Bearer " + hs256(claims(sub="inv"))})
            status, _ = self.invoke(ev, env)
            self.assertEqual(status, 200)
            self.assertEqual(self.stores.records(user=user)[0]["principal"], "inv")
            # authorizer claims are not this mode's proof
            status, _ = self.invoke(v2_event(user, {"sub": "x", "scope": "price:read"}), env)
            self.assertEqual(status, 401)
        finally:
            shutil.rmtree(str(d), ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
