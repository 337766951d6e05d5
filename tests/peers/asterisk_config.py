"""The tree one AsteriskPeer boots from: its own etc, log, run, spool and data dirs in the chroot.

Each peer gets /srv/selfcare-test-<id> and an asterisk.conf pointing there, so the cached chroot is
never modified and two runs cannot see each other's files. The configuration is our dialplan/
files, with the test's FastAGI address and a free SIP port filled in, plus the test-only caller
contexts of local_call.py; the sounds dir holds the stock English sounds plus our prompts.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
from importlib.machinery import SourceFileLoader
from pathlib import Path

from tests.peers.chroot import REPO, resolve_inside
from tests.peers.errors import AsteriskError
from tests.peers.local_call import CALLER_CONTEXTS

DIALPLAN_DIR = REPO / "dialplan"
PROMPTS_DIR = REPO / "prompts" / "sounds"
RTP_PORTS = 200  # rtp.conf's range, found free when the peer is made (ports.free_udp_range)

STUB_CONFIGS = {
    # Modules we do not load still look for these; empty files keep the boot log readable.
    "acl.conf": "",
    "ccss.conf": "",
    "udptl.conf": "",
    "features.conf": "",
    "pjproject.conf": "",
    "sorcery.conf": "",
    "cel.conf": "[general]\nenable=no\n",
    "manager.conf": "[general]\nenabled=no\n",
    "http.conf": "[general]\nenabled=no\n",
    "musiconhold.conf": "",
    "res_stun_monitor.conf": "",
}


def load_install_prompts():
    """scripts/install-prompts as a module (one implementation for the box and for the tests)."""
    loader = SourceFileLoader("install_prompts", str(REPO / "scripts" / "install-prompts"))
    spec = importlib.util.spec_from_loader("install_prompts", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def fill_globals(extensions_conf: str, values: dict[str, str]) -> str:
    """Rewrite `NAME=value` lines of [globals]; every name must be there (the one place they are set)."""
    for name, value in values.items():
        pattern = re.compile(rf"^{re.escape(name)}=.*$", re.M)
        if not pattern.search(extensions_conf):
            raise AsteriskError(f"dialplan/extensions.conf has no {name}= line in [globals]")
        extensions_conf = pattern.sub(f"{name}={value}", extensions_conf)
    return extensions_conf


def fill_pjsip_port(pjsip_conf: str, sip_port: int) -> str:
    filled, count = re.subn(r"^bind=127\.0\.0\.1:\d+$", f"bind=127.0.0.1:{sip_port}", pjsip_conf, flags=re.M)
    if count != 1:
        raise AsteriskError("dialplan/pjsip.conf must have one `bind=127.0.0.1:PORT` transport line")
    return filled


def write_tree(chroot: Path, inside: Path, *, fastagi_host: str, fastagi_port: int, sip_port: int,
               rtp_start: int, prompts_dir: Path | None) -> list[Path]:
    """Write the configuration and data dirs under `inside` (a path as Asterisk sees it); returns
    the prompt files installed into its sounds dir."""
    root = chroot / str(inside).lstrip("/")
    for sub in ("etc", "log", "run", "spool", "lib", "cache", "data/sounds", "phone"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    etc = root / "etc"
    moddir = _module_dir(chroot)
    (etc / "asterisk.conf").write_text(f"""[directories]
astetcdir => {inside}/etc
astmoddir => {moddir}
astvarlibdir => {inside}/lib
astdbdir => {inside}/lib
astkeydir => {inside}/lib
astdatadir => {inside}/data
astagidir => /usr/share/asterisk/agi-bin
astspooldir => {inside}/spool
astrundir => {inside}/run
astlogdir => {inside}/log
astcachedir => {inside}/cache
astsbindir => /usr/sbin

[options]
verbose = 3
debug = 0
maxload = 0
hideconnect = yes
transcode_via_sln = yes
""")
    (etc / "logger.conf").write_text("""[general]
dateformat = %F %T.%3q

[logfiles]
full => notice,warning,error,verbose(3),dtmf
messages => notice,warning,error
""")
    (etc / "rtp.conf").write_text(
        f"[general]\nrtpstart={rtp_start}\nrtpend={rtp_start + RTP_PORTS - 1}\n"
    )
    for name, text in STUB_CONFIGS.items():
        (etc / name).write_text(text)
    # the stock tone tables (Playtones/indications); ours would only repeat them
    shutil.copyfile(chroot / "etc/asterisk/indications.conf", etc / "indications.conf")
    shutil.copyfile(DIALPLAN_DIR / "modules.conf", etc / "modules.conf")
    shutil.copyfile(DIALPLAN_DIR / "cdr.conf", etc / "cdr.conf")
    (root / "log" / "cdr-csv").mkdir(exist_ok=True)
    extensions = fill_globals(
        (DIALPLAN_DIR / "extensions.conf").read_text(),
        {"FASTAGI_HOST": fastagi_host, "FASTAGI_PORT": str(fastagi_port),
         # outgoing calls reach the test destination of local_call.py instead of a trunk
         "OUTBOUND_PREFIX": "Local/", "OUTBOUND_SUFFIX": "@selfcare-test-destination"},
    )
    (etc / "extensions.conf").write_text(extensions + CALLER_CONTEXTS)
    (etc / "pjsip.conf").write_text(fill_pjsip_port((DIALPLAN_DIR / "pjsip.conf").read_text(), sip_port))
    return _build_data_dir(chroot, root, prompts_dir)


def _module_dir(chroot: Path) -> str:
    found = sorted(chroot.glob("usr/lib/*/asterisk/modules"))
    if not found:
        raise AsteriskError(f"no Asterisk modules dir in {chroot}")
    return "/" + str(found[0].relative_to(chroot))


def _build_data_dir(chroot: Path, root: Path, prompts_dir: Path | None) -> list[Path]:
    """astdatadir: the stock one, except sounds/, which gets the stock English set + our prompts."""
    stock = chroot / "usr/share/asterisk"
    data = root / "data"
    sounds = data / "sounds"
    for entry in stock.iterdir():
        if entry.name != "sounds":
            (data / entry.name).symlink_to(Path("/usr/share/asterisk") / entry.name)
    target_inside = resolve_inside(chroot, "/usr/share/asterisk/sounds/en")
    stock_en_host = chroot / target_inside.lstrip("/")
    for dirpath, _dirs, files in os.walk(stock_en_host):
        relative = Path(dirpath).relative_to(stock_en_host)
        (sounds / "en" / relative).mkdir(parents=True, exist_ok=True)
        for name in files:
            (sounds / "en" / relative / name).symlink_to(Path(target_inside) / relative / name)
    if prompts_dir is not None and prompts_dir.is_dir() and any(prompts_dir.iterdir()):
        return load_install_prompts().install_prompts(sounds, prompts_dir)
    return []
