#!/usr/bin/env bash
# Package size and cold-start init time of every Lambda function, written to BENCHMARKS.md
# (section "Functions: package size and cold start", replaced if present, else appended).
#
# - Package size: the arm64 release `bootstrap` that `make build` deploys
#   (target/lambda/<binary>/bootstrap), zipped as SAM packages it (one `bootstrap` entry,
#   deflate), in KiB.
# - Cold start: the x86_64 release binary of the same code, started RUNS times (default 5) under
#   a minimal local Lambda Runtime API; init = from spawning the process to the runtime posting
#   the result of its first event. The event is `{}`, which every handler rejects while parsing
#   its input (InvalidInput), so the figure is process start + runtime and SDK client setup +
#   one event's round trip, with no AWS call.
#
# Builds what is missing or stale first (both builds at the lowest CPU priority).
# Usage: scripts/measure-functions.sh [--no-build]     env: RUNS=5
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
BINS=$(sed -n 's/^ *Binary: *//p' template.yaml)
PATH="$PWD/.venv/bin:$PATH"

if [[ "${1:-}" != "--no-build" ]]; then
  if command -v rustup >/dev/null; then rustup target add aarch64-unknown-linux-gnu >/dev/null; fi
  # shellcheck disable=SC2046
  nice -n 19 .venv/bin/cargo-lambda lambda build --release --arm64 $(printf -- '--bin %s ' $BINS)
  # shellcheck disable=SC2046
  nice -n 19 cargo build --release $(printf -- '--bin %s ' $BINS)
fi

python3 - "$RUNS" $BINS <<'PY'
import datetime, http.server, json, os, platform, re, socket, statistics, subprocess, sys
import threading, time, zipfile, io

runs, bins = int(sys.argv[1]), sys.argv[2:]

def zip_kib(path: str) -> float:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o100755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(path, "rb") as f:
            z.writestr(info, f.read())
    return len(buf.getvalue()) / 1024

class Runtime(http.server.BaseHTTPRequestHandler):
    """The Lambda Runtime API, for one event: /next hands out `{}` once, then holds."""
    def do_GET(self):
        if not self.path.endswith("/runtime/invocation/next"):
            return self.reply(404, b"{}")
        if self.server.served:  # the second /next: hold it until the process is killed
            self.server.done.wait(30)
            self.close_connection = True
            return
        self.server.served = True
        self.reply(200, b"{}", {
            "Lambda-Runtime-Aws-Request-Id": "measure-1",
            "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 60000),
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:measure",
            "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
        })
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        first = "/invocation/measure-1/" in self.path
        if first:
            self.server.handled_at = time.perf_counter()
            self.server.outcome = self.path.rsplit("/", 1)[-1]
        self.reply(202, b"{}")
        if first:  # after the answer: the process is killed as soon as this is set
            self.server.done.set()
    def reply(self, status, body, headers={}):
        self.send_response(status)
        for k, v in {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the function process is killed mid-request on purpose

def cold_start_ms(binary: str) -> tuple[float, str]:
    server = Server(("127.0.0.1", 0), Runtime)
    server.served, server.done, server.handled_at, server.outcome = False, threading.Event(), None, None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0)); unused = s.getsockname()[1]
    env = {
        "PATH": "/usr/bin:/bin", "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": os.path.basename(binary), "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/measure",
        "AWS_LAMBDA_LOG_STREAM_NAME": "measure", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_EC2_METADATA_DISABLED": "true", "STACKWAVE_BUCKET": "stackwave-artifacts-123456789012",
        "STACKWAVE_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:stackwave-alerts",
        "STACKWAVE_ENDPOINT_URL": f"http://127.0.0.1:{unused}", "RUST_LOG": "info",
    }
    started = time.perf_counter()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not server.done.wait(30) or server.handled_at is None:
            raise SystemExit(f"{binary}: no event handled within 30 s")
        return (server.handled_at - started) * 1000, server.outcome
    finally:
        proc.kill(); proc.wait(); server.shutdown(); server.server_close()

rows = []
for name in bins:
    arm = f"target/lambda/{name}/bootstrap"
    host = f"target/release/{name}"
    for path in (arm, host):
        if not os.path.exists(path):
            raise SystemExit(f"{path} is missing: run without --no-build (or `make build`)")
    times, outcomes = [], set()
    for _ in range(runs):
        ms, outcome = cold_start_ms(host)
        times.append(ms); outcomes.add(outcome)
    rows.append((name.removeprefix("stackwave-"), zip_kib(arm), os.path.getsize(arm) / 1024,
                 statistics.median(times), min(times), max(times), "/".join(sorted(outcomes))))
    print(f"{rows[-1][0]}: zip {rows[-1][1]:.0f} KiB, init median {rows[-1][3]:.1f} ms "
          f"(min {rows[-1][4]:.1f}, max {rows[-1][5]:.1f}; first event answered with {rows[-1][6]})", file=sys.stderr)

def run(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"

cpu = "unknown"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip(); break
except OSError:
    pass
# Uncommitted changes to what goes into the binaries (sources, manifests, lock file).
changes = run("git", "status", "--porcelain", "--untracked-files=no", "--", "*.rs", "*Cargo.toml", "Cargo.lock")
dirty = " (with uncommitted changes to the Rust sources)" if changes not in ("", "unknown") else ""
section = [
    "## Functions: package size and cold start",
    "",
    f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC at commit "
    f"`{run('git', 'rev-parse', '--short', 'HEAD')}`{dirty} by `scripts/measure-functions.sh` "
    f"on {run('uname', '-m')}, {os.cpu_count()} CPUs ({cpu}), {run('rustc', '--version')}.",
    "",
    "| function | zip KiB | bootstrap KiB | init ms (median) | min | max |",
    "|---|---:|---:|---:|---:|---:|",
]
for fn, zk, bk, med, lo, hi, _ in rows:
    section.append(f"| {fn} | {zk:.0f} | {bk:.0f} | {med:.1f} | {lo:.1f} | {hi:.1f} |")
section += [
    "",
    "How: **zip** is the arm64 release `bootstrap` that `make build` produces (cargo-lambda,",
    "`--release --arm64`, the workspace's release profile: `opt-level = \"s\"`, thin LTO, one codegen",
    "unit, stripped), zipped with deflate as a single `bootstrap` entry, the way `sam deploy` packages",
    "it. **init** is the x86_64 release build of the same code run on this machine (the arm64 binary",
    f"cannot run here), {runs} cold starts per function: the time from spawning the process to the",
    "function posting its answer to the first event, under a minimal local Lambda Runtime API",
    "(`AWS_LAMBDA_RUNTIME_API`). It covers process start, tracing setup, SDK configuration and client",
    "construction, the runtime's first `/next` and one event (`{}`, rejected while parsing the input,",
    "so no AWS call is made). The endpoint variable points at an unused loopback port; credentials",
    "are dummies. Lambda's own init on arm64 at 128 MB adds its sandbox start and a smaller CPU share,",
    "so expect the real Init Duration to be larger than these figures; the comparison between",
    "functions holds.",
    "",
]

path = "BENCHMARKS.md"
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n\n"
pattern = re.compile(r"^## Functions: package size and cold start\n.*?(?=^## |\Z)", re.S | re.M)
block = "\n".join(section)
text = pattern.sub(lambda _: block, text, count=1) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
open(path, "w").write(text.rstrip("\n") + "\n")
print(f"{path}: section 'Functions: package size and cold start' written", file=sys.stderr)
PY
