"""A minimal PEP 517 / PEP 660 build backend for this package, standard library only.

It builds a pure-Python wheel of `src/mapped_state` (PEP 427), an sdist of this directory, and
an editable wheel (a `.pth` file naming `src/`). The metadata comes from `pyproject.toml`'s
`[project]` table (read with `tomllib`, hence Python 3.11+, the package's own minimum).
"""

import base64
import hashlib
import io
import os
import tarfile
import tomllib
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "mapped_state"
# Reproducible archives: every entry gets the same timestamp (1980-01-01, the earliest a zip holds).
EPOCH = (1980, 1, 1, 0, 0, 0)


def _project():
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]


def _dist_name(p):
    return p["name"].replace("-", "_")


def _metadata(p):
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {p['name']}",
        f"Version: {p['version']}",
        f"Summary: {p['description']}",
        f"Requires-Python: {p['requires-python']}",
        f"License: {p['license']['text']}",
        f"Keywords: {','.join(p.get('keywords', []))}",
    ]
    lines += [f"Classifier: {c}" for c in p.get("classifiers", [])]
    lines += [f"Project-URL: {k}, {v}" for k, v in p.get("urls", {}).items()]
    readme = p.get("readme")
    body = ""
    if readme:
        lines.append("Description-Content-Type: text/markdown")
        with open(os.path.join(HERE, readme), encoding="utf-8") as f:
            body = f.read()
    return ("\n".join(lines) + "\n\n" + body).encode("utf-8")


def _entry_points(p):
    scripts = p.get("scripts", {})
    if not scripts:
        return b""
    return ("[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items())).encode("utf-8")


def _wheel_files(p, editable):
    """(archive name, bytes) of the wheel's payload, without the dist-info."""
    if editable:
        yield f"__editable__.{_dist_name(p)}.pth", (os.path.join(HERE, "src") + "\n").encode("utf-8")
        return
    root = os.path.join(HERE, "src", PACKAGE)
    for name in sorted(os.listdir(root)):
        if name.endswith(".py"):
            with open(os.path.join(root, name), "rb") as f:
                yield f"{PACKAGE}/{name}", f.read()


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _build(wheel_directory, editable):
    p = _project()
    dist = _dist_name(p)
    info = f"{dist}-{p['version']}.dist-info"
    filename = f"{dist}-{p['version']}-py3-none-any.whl"
    files = list(_wheel_files(p, editable))
    files.append((f"{info}/METADATA", _metadata(p)))
    files.append((f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: mapped-state _build/backend.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n"))
    ep = _entry_points(p)
    if ep:
        files.append((f"{info}/entry_points.txt", ep))
    record = "\n".join(_record_line(n, d) for n, d in files) + f"\n{info}/RECORD,,\n"
    files.append((f"{info}/RECORD", record.encode("utf-8")))
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files:
            entry = zipfile.ZipInfo(name, EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(entry, data)
    return filename


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _build(wheel_directory, editable=False)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _build(wheel_directory, editable=True)


def build_sdist(sdist_directory, config_settings=None):
    p = _project()
    base = f"{_dist_name(p)}-{p['version']}"
    filename = f"{base}.tar.gz"
    members = ["pyproject.toml", "README.md", "_build/backend.py"]
    for sub in ("src/" + PACKAGE, "tests"):
        for name in sorted(os.listdir(os.path.join(HERE, sub))):
            if name.endswith(".py"):
                members.append(f"{sub}/{name}")
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as t:
        pkg_info = _metadata(p)
        entries = [("PKG-INFO", pkg_info)]
        for m in members:
            with open(os.path.join(HERE, m), "rb") as f:
                entries.append((m, f.read()))
        for rel, data in entries:
            entry = tarfile.TarInfo(f"{base}/{rel}")
            entry.size = len(data)
            entry.mode = 0o644
            entry.mtime = 315532800
            t.addfile(entry, io.BytesIO(data))
    return filename
