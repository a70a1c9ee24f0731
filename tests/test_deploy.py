"""The production files in deploy/: the documented render of the nginx site passes
`nginx -t`, gunicorn accepts its config, the systemd units run commands that exist, and files
go out by X-Accel-Redirect once the app has checked access."""

from __future__ import annotations

import configparser
import gc
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def documented_render() -> list[str]:
    text = (ROOT / "docs" / "DEPLOY.md").read_text()
    [line] = [ln for ln in text.splitlines() if ln.startswith("python3 deploy/render.py")]
    return shlex.split(line)


def deploy_renderer():
    """deploy/render.py as a module (it is a script beside the configs, not a package)."""
    sys.path.insert(0, str(ROOT / "deploy"))
    try:
        import render
    finally:
        sys.path.pop(0)
    return render


def nginx_main(tmp_path: Path, site: Path, *, foreground: bool = False) -> Path:
    """A main nginx.conf that keeps everything under tmp_path and includes the site."""
    lines = []
    if foreground:
        if os.geteuid() == 0:
            lines.append("user root;")  # workers must read the test's folders
        lines.append("daemon off;")
    main = tmp_path / "nginx.conf"
    main.write_text(
        "\n".join(lines)
        + f"""
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/logs/error.log;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    access_log {tmp_path}/logs/access.log;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {site};
}}
"""
    )
    return main


def render(tmp_path: Path, *, brotli: bool = False) -> Path:
    """The documented command, with its paths moved under tmp_path."""
    args = documented_render()[2:]
    values = dict(zip(args[::2], args[1::2], strict=True))
    assert set(values) == {"--server-name", "--app-root", "--data-dir", "--out"}
    out = tmp_path / "sites" / "chendu"
    out.parent.mkdir()
    renderer = deploy_renderer()
    return renderer.render(
        server_name=values["--server-name"],
        app_root=ROOT,
        data_dir=tmp_path / "data",
        out=out,
        listen="127.0.0.1:8089",
        cache_dir=tmp_path / "cache",
        brotli=brotli,
    )


def test_the_rendered_site_has_no_placeholders_left(tmp_path):
    text = render(tmp_path).read_text()
    assert "${" not in text
    assert "server_name chendu.example.com;" in text
    assert f"alias {ROOT}/static/;" in text
    assert f"alias {tmp_path / 'data' / 'media'}/;" in text
    assert "client_max_body_size 32m;" in text


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (tests/tools/ensure_nginx.sh)")
def test_nginx_accepts_the_rendered_site(tmp_path):
    site = render(tmp_path)
    (tmp_path / "data" / "media").mkdir(parents=True)
    (tmp_path / "logs").mkdir()
    main = nginx_main(tmp_path, site)
    result = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(main)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_gunicorn_accepts_its_config():
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--check-config",
            "-c",
            "deploy/gunicorn.conf.py",
            "app:create_app()",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_master_freezes_what_it_preloaded_before_each_fork():
    # A worker's garbage collector must not walk (and so write to, and unshare) the pages of
    # the site the master loaded: the config's pre_fork hook freezes them.
    settings = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    assert settings["preload_app"] is True
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        settings["pre_fork"](None, None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_systemd_units_run_flask_commands_that_exist(tmp_path):
    commands = []
    for unit in sorted((ROOT / "deploy" / "systemd").glob("*.service")):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        text = unit.read_text()
        parser.read_string(text)
        assert parser.has_section("Service"), unit.name
        commands += re.findall(r"^ExecStart=\S+/flask --app app (.+)$", text, re.M)
    assert set(commands) == {"shop release-holds", "search drain", "shop reconcile"}
    for command in commands:
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "flask"),
                "--app",
                "app",
                *command.split(),
                "--help",
            ],
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "data")},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr


def test_files_go_out_by_x_accel_redirect_after_the_check(app, client, make_user, login):
    import io

    from PIL import Image

    from content import articles, media
    from content.articles import Draft

    app.config["MEDIA_ACCEL_PREFIX"] = "/_media/"
    data = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(data, "PNG")
    data.seek(0)
    with app.app_context():
        image = media.save_image(data, original_name="a.png")
        image_url = f"/media/{image.key}.{image.ext}"
        inside = media.path_of(image).relative_to(app.config["MEDIA_DIR"]).as_posix()
        tone = (ROOT / "tests" / "fixtures" / "tone.mp3").open("rb")
        voice = media.save_audio(tone, original_name="tone.mp3")
        tone.close()
        articles.save_article(
            Draft(
                title="会员语音",
                body_md="正文",
                visibility="members",
                status="published",
                voice_id=voice.id,
            )
        )
        voice_url = f"/voice/{voice.key}.{voice.ext}"
        voice_inside = media.path_of(voice).relative_to(app.config["MEDIA_DIR"]).as_posix()
    response = client.get(image_url)
    assert response.status_code == 200 and response.data == b""
    assert response.headers["X-Accel-Redirect"] == "/_media/" + inside
    assert response.mimetype == "image/png"
    # A members-only voice: refused to a stranger by the app, nginx never asked.
    refused = client.get(voice_url)
    assert refused.status_code == 403 and "X-Accel-Redirect" not in refused.headers
    make_user()
    with app.app_context():
        from members import accounts

        accounts.grant_membership("reader@example.com", "年度会员", 30, reason="测试")
    login()
    allowed = client.get(voice_url)
    assert allowed.headers["X-Accel-Redirect"] == "/_media/" + voice_inside
    assert allowed.headers["Cache-Control"].startswith("private")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (tests/tools/ensure_nginx.sh)")
def test_nginx_in_front_of_the_app_serves_static_and_members_voices(
    app, live_server, tmp_path, make_user
):
    """The rendered site for real, on loopback: hashed static files cached a year, a
    members-only voice refused to a stranger and sent by nginx (with Range) to a member."""
    import http.cookiejar
    import time
    import urllib.error
    import urllib.request

    from content import articles, media
    from content.articles import Draft
    from members import accounts

    app.config["MEDIA_ACCEL_PREFIX"] = "/_media/"
    port = _free_port()
    renderer = deploy_renderer()
    (tmp_path / "sites").mkdir()
    site = renderer.render(
        server_name="localhost",
        app_root=ROOT,
        data_dir=Path(app.config["DATA_DIR"]),
        out=tmp_path / "sites" / "chendu",
        listen=f"127.0.0.1:{port}",
        upstream=live_server.url.removeprefix("http://"),
        cache_dir=tmp_path / "cache",
        brotli=False,
    )
    (tmp_path / "logs").mkdir()
    main = nginx_main(tmp_path, site, foreground=True)
    with app.app_context():
        tone = (ROOT / "tests" / "fixtures" / "tone.mp3").open("rb")
        voice = media.save_audio(tone, original_name="tone.mp3")
        tone.close()
        slug = articles.save_article(
            Draft(
                title="会员语音",
                body_md="正文",
                visibility="members",
                status="published",
                voice_id=voice.id,
            )
        ).slug
        voice_bytes = media.path_of(voice).read_bytes()
    make_user()
    with app.app_context():
        accounts.grant_membership("reader@example.com", "年度会员", 30, reason="测试")
    nginx = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(main)])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as r:  # noqa: S310
                    r.read()
                break
            except OSError:
                assert nginx.poll() is None, (tmp_path / "logs" / "error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not answer"
                time.sleep(0.1)

        # The micro-cache: an anonymous home page is kept, a signed-in reader's never.
        states = []
        for _ in range(2):
            with urllib.request.urlopen(base + "/", timeout=5) as r:  # noqa: S310
                states.append(r.headers["X-Cache"])
        assert states == ["MISS", "HIT"]
        with_session = urllib.request.Request(base + "/", headers={"Cookie": "session=x"})
        with urllib.request.urlopen(with_session, timeout=5) as r:  # noqa: S310
            assert r.headers["X-Cache"] == "BYPASS"
        with urllib.request.urlopen(base + "/login", timeout=5) as r:  # noqa: S310
            assert r.headers["X-Cache"] == "MISS"  # private: fetched every time
        with urllib.request.urlopen(base + "/login", timeout=5) as r:  # noqa: S310
            assert r.headers["X-Cache"] == "MISS"

        with urllib.request.urlopen(base + f"/a/{slug}", timeout=5) as r:  # noqa: S310
            page = r.read().decode()
        css = re.search(r'href="(/static/site\.css\?v=[0-9a-f]+)"', page).group(1)
        with urllib.request.urlopen(base + css, timeout=5) as r:  # noqa: S310
            assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert r.read() == (ROOT / "static" / "site.css").read_bytes()
        gz = urllib.request.Request(base + css, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(gz, timeout=5) as r:  # noqa: S310
            assert r.headers["Content-Encoding"] == "gzip"

        voice_url = base + f"/voice/{voice.key}.{voice.ext}"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(voice_url, timeout=5)  # noqa: S310
        assert refused.value.code == 403
        refused.value.close()

        jar = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with browser.open(base + "/login", timeout=5) as r:
            form = r.read().decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        from urllib.parse import urlencode

        with browser.open(
            base + "/login",
            data=urlencode(
                {"csrf_token": token, "email": "reader@example.com", "password": "correct horse"}
            ).encode(),
            timeout=5,
        ) as r:
            r.read()
        ranged = urllib.request.Request(voice_url, headers={"Range": "bytes=0-99"})
        with browser.open(ranged, timeout=5) as r:
            assert r.status == 206
            assert r.headers["Content-Range"] == f"bytes 0-99/{len(voice_bytes)}"
            assert r.read() == voice_bytes[:100]
            assert "X-Accel-Redirect" not in r.headers  # nginx keeps it to itself
        with pytest.raises(urllib.error.HTTPError) as internal:
            urllib.request.urlopen(base + "/_media/anything.mp3", timeout=5)  # noqa: S310
        assert internal.value.code == 404  # the internal location is not reachable from outside
        internal.value.close()
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
