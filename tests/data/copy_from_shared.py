"""Copies the reference material the tests replay from the team's shared/ folder into tests/data/,
so `cargo test` needs nothing beside the checkout (DESIGN §9). Run from the repository root with
shared/ beside the clone: `python3 tests/data/copy_from_shared.py`. tests/data/SOURCES.md says where
each file came from and under which licence.

* JumpCloud recordings: copied byte for byte.
* JumpCloud spec: only the `definitions` of the V1 and V2 Swagger files (what the spec test derives
  the field list from); the paths, which are most of their size, are left out.
* Google recordings: copied with people's names and e-mail local parts replaced by placeholders
  (`person01`, `Person01 Example`), consistently across files, so shapes, key order, types, ids and
  counts stay as recorded but no real person's name or address is in this repository.
"""
import json
import pathlib
import re
import shutil

repo = pathlib.Path(__file__).resolve().parents[2]
shared = repo.parent / "shared"
data = repo / "tests" / "data"

# JumpCloud recordings, whole.
src = shared / "jumpcloud" / "recordings"
dst = data / "jumpcloud" / "recordings"
if dst.exists():
    shutil.rmtree(dst)
for f in sorted(src.rglob("*.json")):
    out = dst / f.relative_to(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(f, out)

# JumpCloud spec definitions.
spec_out = data / "jumpcloud" / "spec"
spec_out.mkdir(parents=True, exist_ok=True)
for name in ["JumpCloud.SDK.V1", "JumpCloud.SDK.V2"]:
    spec = json.loads((shared / "jumpcloud" / "spec" / f"{name}.json").read_text())
    extract = {"swagger": spec["swagger"], "info": spec["info"], "definitions": spec["definitions"]}
    (spec_out / f"{name}.definitions.json").write_text(json.dumps(extract, indent=1, ensure_ascii=False) + "\n")

# Google recordings, pseudonymised.
src = shared / "google" / "recordings"
dst = data / "google" / "recordings"
if dst.exists():
    shutil.rmtree(dst)
EMAIL = re.compile(r"([A-Za-z0-9._%+-]+)@([A-Za-z0-9.-]+)")
people: dict[str, str] = {}


def placeholder(local: str) -> str:
    if local not in people:
        people[local] = f"person{len(people) + 1:02d}"
    return people[local]


def pseudonymise(value, key=None):
    if isinstance(value, dict):
        name_keys = {"givenName", "familyName", "fullName", "displayName"}
        out = {}
        for k, v in value.items():
            if k in name_keys and isinstance(v, str):
                who = placeholder(value.get("fullName", v).lower().replace(" ", "."))
                out[k] = {"givenName": who.capitalize(), "familyName": "Example"}.get(k, f"{who.capitalize()} Example")
            else:
                out[k] = pseudonymise(v, k)
        return out
    if isinstance(value, list):
        return [pseudonymise(v, key) for v in value]
    if isinstance(value, str) and key not in {"etag", "id", "kind"}:
        return EMAIL.sub(lambda m: f"{placeholder(m.group(1))}@{m.group(2)}", value)
    return value


# Group addresses are not people: keep them, so group e-mails still read as recorded.
for f in sorted(src.rglob("*.json")):
    rec = json.loads(f.read_text())
    if "/groups?" in rec["url"] or rec["url"].endswith("/groups"):
        for g in rec["body"].get("groups", []):
            local = g["email"].split("@")[0]
            people.setdefault(local, local)
for f in sorted(src.rglob("*.json")):
    rec = json.loads(f.read_text())
    rec["body"] = pseudonymise(rec["body"])
    out = dst / f.relative_to(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec, indent=2, ensure_ascii=False) + "\n")
print(f"copied; {len([p for p, q in people.items() if p != q])} people pseudonymised")
