"""The build's one extra step: the report page's charting library, Apache ECharts, taken from
the npm registry (its release tarball, checked against the registry's sha512 integrity) into
``hpo_kfp/reports/static/`` with its licence and notice. The repository does not hold it; a
wheel and an sdist do, so an install from either needs no network, and a build where the file
is already there with the pinned digest downloads nothing.

ECharts, because the page needs parallel coordinates with brushing, slices, importance bars,
histories and learning curves offline in one file: ECharts draws all of them (the parallel
series and the brush component), is kept by the Apache Software Foundation, and ships a
prebuilt ``dist/echarts.min.js`` (1.1 MB; the page embeds it compressed, ~0.5 MB). Plotly's
bundle is 4.6 MB; Vega's needs three libraries; uPlot has no parallel coordinates.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

VERSION = "6.1.0"
TARBALL = f"https://registry.npmjs.org/echarts/-/echarts-{VERSION}.tgz"
# The registry's `dist.integrity` of that tarball (https://registry.npmjs.org/echarts).
INTEGRITY = "sha512-q0yaFPggC9FUdsWH4blavRWFmxdrIodbkoKNAjJudAI6CA9gNPxHtV2RcZNEepZVlk4yvBYkOkbk6HIVpIyHZA=="
# What the build takes from the tarball, and the sha256 of each (a file already in place with
# this digest is not downloaded again).
FILES = {
    "package/dist/echarts.min.js": "echarts.min.js",
    "package/LICENSE": "ECHARTS-LICENSE",
    "package/NOTICE": "ECHARTS-NOTICE",
}
STATIC = Path("hpo_kfp") / "reports" / "static"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_echarts(folder: Path) -> None:
    """Puts ECharts' files in ``folder`` unless they are there with the digests the manifest
    beside them records (written from a verified tarball)."""
    manifest = folder / "ECHARTS-SHA256"
    if manifest.is_file():
        recorded = dict(line.split("  ", 1)[::-1] for line in manifest.read_text().splitlines() if line)
        if recorded.get("version") == VERSION and all(
            (folder / name).is_file() and _sha256(folder / name) == recorded.get(name)
            for name in FILES.values()
        ):
            return
    try:
        with urllib.request.urlopen(TARBALL, timeout=60) as response:
            tarball = response.read()
    except OSError as error:
        raise RuntimeError(
            f"building hpo-kfp takes Apache ECharts {VERSION} from {TARBALL} for the report page, "
            f"which could not be read ({error}); build where the npm registry is reachable, or from "
            "an sdist or wheel, which carry it"
        ) from None
    algorithm, digest = INTEGRITY.split("-", 1)
    if base64.b64encode(hashlib.new(algorithm, tarball).digest()).decode() != digest:
        raise RuntimeError(f"{TARBALL} does not match the pinned integrity {INTEGRITY}")
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{VERSION}  version"]
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for member, name in FILES.items():
            source = archive.extractfile(member)
            if source is None:
                raise RuntimeError(f"{TARBALL} has no file {member}")
            data = source.read()
            (folder / name).write_bytes(data)
            lines.append(f"{hashlib.sha256(data).hexdigest()}  {name}")
    manifest.write_text("\n".join(lines) + "\n")


class EChartsHook(BuildHookInterface):  # type: ignore[type-arg]
    """Runs for the wheel (also an editable one) and the sdist."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        fetch_echarts(Path(self.root) / STATIC)
