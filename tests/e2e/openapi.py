"""Response validation against api/openapi.yaml.

Loads the document, resolves every local $ref, and checks one response at a
time: the status must be declared for the route (or be one of the responses
any route may give, `x-any-route-responses`), required headers must be present
and match their schema, the Content-Type must be declared, and a JSON body must
match its schema (JSON Schema 2020-12, as OpenAPI 3.1 uses).
"""

import copy
import json
import re

import jsonschema
import yaml


class SpecError(AssertionError):
    """The response does not conform to the document."""


def _resolve(doc, node, stack):
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise ValueError("only local $ref supported: %r" % ref)
            if ref in stack:
                raise ValueError("recursive $ref: %s" % " -> ".join(stack + [ref]))
            target = doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    raise ValueError("dangling $ref: %r" % ref)
                target = target[part]
            resolved = _resolve(doc, target, stack + [ref])
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            if siblings:
                merged = copy.deepcopy(resolved)
                merged.update(_resolve(doc, siblings, stack))
                return merged
            return resolved
        return {k: _resolve(doc, v, stack) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(doc, v, stack) for v in node]
    return node


def _template_regex(template):
    parts = re.split(r"(\{[^}/]+\})", template)
    out = []
    for p in parts:
        if p.startswith("{") and p.endswith("}"):
            out.append("[^/]+")
        else:
            out.append(re.escape(p))
    return re.compile("^" + "".join(out) + "$")


METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class Spec:
    def __init__(self, path):
        with open(path, "rb") as f:
            raw = yaml.safe_load(f)
        self.raw = raw
        self.doc = _resolve(raw, raw, [])
        self.paths = []
        for template, item in self.doc.get("paths", {}).items():
            self.paths.append((template, _template_regex(template), item))
        self.any_route = self.doc.get("x-any-route-responses", {})
        self._validators = {}

    def schemas(self):
        """Every schema object in the resolved document (for self-checks)."""
        found = []

        def walk(node):
            if isinstance(node, dict):
                for k, v in node.items():
                    if k == "schema" and isinstance(v, dict):
                        found.append(v)
                    else:
                        walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(self.doc.get("paths", {}))
        walk(self.any_route)
        for s in self.doc.get("components", {}).get("schemas", {}).values():
            found.append(s)
        return found

    def _validator(self, schema):
        # Keyed by id(); the schema is kept alongside so the id stays valid.
        entry = self._validators.get(id(schema))
        if entry is None:
            v = jsonschema.Draft202012Validator(
                schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
            )
            entry = self._validators[id(schema)] = (v, schema)
        return entry[0]

    def find_path(self, path):
        for template, rx, item in self.paths:
            if rx.match(path):
                return template, item
        return None, None

    def response_object(self, method, path, status):
        """The declared response object for (method, path, status), or raise."""
        template, item = self.find_path(path)
        m = method.lower()
        code = str(status)
        if item is not None and m in item:
            responses = item[m].get("responses", {})
            if code in responses:
                return "%s %s" % (method, template), responses[code]
            if code in ("404", "405"):
                raise SpecError(
                    "%s %s: status %s not declared for the route" % (method, template, code)
                )
        if item is None and code == "405":
            raise SpecError("%s %s: 405 for a path no route serves (want 404)" % (method, path))
        if item is not None and m not in item and code == "404":
            raise SpecError(
                "%s %s: 404 for a path that exists with another method (want 405)"
                % (method, path)
            )
        if code in self.any_route:
            return "%s %s (any route)" % (method, path), self.any_route[code]
        raise SpecError(
            "%s %s: status %s is not declared (route %s)" % (method, path, code, template)
        )

    def validate(self, method, path, status, headers, body):
        """headers: dict with lower-case names. body: bytes. Raises SpecError."""
        where, resp = self.response_object(method, path, status)
        problems = []
        for name, h in resp.get("headers", {}).items():
            value = headers.get(name.lower())
            if value is None:
                if h.get("required"):
                    problems.append("missing header %s" % name)
                continue
            schema = h.get("schema")
            if schema is not None:
                for e in self._validator(schema).iter_errors(value):
                    problems.append("header %s=%r: %s" % (name, value, e.message))
        content = resp.get("content")
        ctype = headers.get("content-type")
        if content:
            if ctype is None:
                problems.append("missing Content-Type")
            else:
                base = ctype.split(";")[0].strip().lower()
                media = content.get(base)
                if media is None:
                    problems.append(
                        "Content-Type %r not declared (declared: %s)" % (ctype, ", ".join(content))
                    )
                elif method.upper() != "HEAD":
                    schema = media.get("schema")
                    if base == "application/json" or base.endswith("+json"):
                        try:
                            doc = json.loads(body.decode("utf-8"))
                        except (UnicodeDecodeError, ValueError) as exc:
                            problems.append("body is not JSON (%s): %r" % (exc, body[:200]))
                            doc = None
                            schema = None
                        if schema is not None:
                            for e in self._validator(schema).iter_errors(doc):
                                path_s = "/".join(str(p) for p in e.absolute_path)
                                problems.append("body at /%s: %s" % (path_s, e.message))
                    elif schema is not None:
                        try:
                            text = body.decode("utf-8")
                        except UnicodeDecodeError:
                            problems.append("text body is not UTF-8")
                        else:
                            for e in self._validator(schema).iter_errors(text):
                                problems.append("body: %s" % e.message)
        elif body:
            problems.append("body present but no content declared")
        if problems:
            raise SpecError(
                "%s -> %s does not match api/openapi.yaml:\n  %s\n  body: %r"
                % (where, status, "\n  ".join(problems), body[:300])
            )
