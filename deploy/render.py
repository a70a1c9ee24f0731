"""Write the nginx site for 晨读 from deploy/nginx.conf.in:

    python3 deploy/render.py --server-name chendu.example.com --app-root /srv/chendu \
        --data-dir /srv/chendu/instance --out /etc/nginx/sites-available/chendu

Beside the site it writes `chendu-brotli.conf`: brotli settings when nginx's brotli module is
installed, empty otherwise (nginx refuses brotli directives it does not know)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")
BROTLI_MODULE = Path("/etc/nginx/modules-enabled/50-mod-http-brotli-filter.conf")
BROTLI = """brotli on;
brotli_comp_level 5;
brotli_types text/css application/javascript application/json application/xml
             application/rss+xml image/svg+xml text/plain text/xml;
"""


def render(
    *,
    server_name: str,
    app_root: Path,
    data_dir: Path,
    out: Path,
    listen: str = "80",
    upstream: str = "127.0.0.1:8000",
    cache_dir: Path = Path("/var/cache/nginx/chendu"),
    brotli: bool | None = None,
) -> Path:
    brotli_conf = out.parent / "chendu-brotli.conf"
    if brotli is None:
        brotli = BROTLI_MODULE.exists()
    brotli_conf.write_text(BROTLI if brotli else "# the brotli module is not installed\n")
    values = {
        "SERVER_NAME": server_name,
        "APP_ROOT": str(app_root),
        "MEDIA_DIR": str(data_dir / "media"),
        "LISTEN": listen,
        "UPSTREAM": upstream,
        "CACHE_DIR": str(cache_dir),
        "BROTLI_INCLUDE": str(brotli_conf),
    }
    # Only ${NAME} is ours: nginx's own $variables pass through untouched.
    text = PLACEHOLDER.sub(lambda m: values[m.group(1)], (HERE / "nginx.conf.in").read_text())
    out.write_text(text)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-name", required=True)
    parser.add_argument("--app-root", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--listen", default="80")
    parser.add_argument("--upstream", default="127.0.0.1:8000")
    parser.add_argument("--cache-dir", type=Path, default=Path("/var/cache/nginx/chendu"))
    args = parser.parse_args()
    path = render(
        server_name=args.server_name,
        app_root=args.app_root,
        data_dir=args.data_dir,
        out=args.out,
        listen=args.listen,
        upstream=args.upstream,
        cache_dir=args.cache_dir,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
