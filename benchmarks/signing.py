"""Signing benchmark: sign + digest and verify of multi-GB model directories against one all-core
SHA-256 pass over the same bytes.

For each size in --sizes (GB, 10^9 bytes) a model directory is written in a temporary directory:
two weight files of half the size each (cheap pseudo-random bytes: a random 16 MiB block stamped
with a counter), a config, ``MLmodel`` and the candidate claims. Each step then runs in a fresh
child process (imports done before the clock starts; peak RSS is the child's whole-life maximum,
imports included), --repeat rounds, steps interleaved in each round (each round starts one step
further on):

- ``sha256 (all cores)``   every file hashed once with hashlib, 1 MiB reads, files spread over all
                           cores, largest first: the reference
- ``sign + digest``        ``sign_and_digest`` at candidate level: bundle and artifact digest
- ``verify, 1 key``        ``verify_and_digest`` with the signing key trusted
- ``verify, 5 keys``       the same with four other trusted keys listed before it

With --before, also the previous way: model signing's stock signer then a whole-file artifact digest
(a second pass reading each file whole), and its stock verifier tried key after key. Prints each
step's median and best wall time, GB/s and the ratio to the reference (best rounds: the least
disturbed by other work on the machine), its CPU seconds (all threads, median; less sensitive to
that work), its peak RSS and the goals; exits 1 if a digest disagrees with the reference. --cold
drops the directory's pages from the page cache before every step (only its own files), so reads
come from the disk. The directory is removed afterwards.

    .venv/bin/python -m benchmarks.signing [--sizes 1,4,16] [--repeat 3] [--cold] [--before]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

GB = 10**9
BLOCK = 16 << 20
CHUNK = 1 << 20
MODEL, VERSION = "bench-model", "1"
STEPS = ["sha256", "sign", "verify-1", "verify-5"]
BEFORE = ["before-sign", "before-verify-5"]
LABELS = {
    "sha256": "sha256 (all cores)",
    "sign": "sign + digest",
    "verify-1": "verify, 1 key",
    "verify-5": "verify, 5 keys",
    "before-sign": "before: stock sign + digest",
    "before-verify-5": "before: stock verify, 5 keys",
}
IGNORED = ["candidate.sig", "release.sig", "approvals.json", "govdeploy-release.json"]


def write_model(model: Path, size: int) -> None:
    """Two weight files of ``size / 2`` bytes, a config, MLmodel and the candidate claims, synced."""
    from govdeploy.trust.signatures import Identity, write_identity

    model.mkdir(parents=True)
    block = bytearray(os.urandom(BLOCK))
    for index in (1, 2):
        with open(model / f"model-0000{index}-of-00002.safetensors", "wb") as weights:
            left, counter = size // 2, index << 48
            while left > 0:
                block[:8] = counter.to_bytes(8, "little")
                counter += 1
                left -= weights.write(memoryview(block)[: min(left, BLOCK)])
            weights.flush()
            os.fsync(weights.fileno())
    (model / "config.json").write_text(json.dumps({"hidden_size": 4096, "num_layers": 32}))
    (model / "MLmodel").write_text("flavors: {}\n")
    identity = Identity(
        model=MODEL,
        version=VERSION,
        model_id="m-bench",
        run_id="r",
        submitted_by="bench",
        submission_proven=True,
    )
    write_identity(model, identity)


def write_keys(keys: Path) -> None:
    """The candidate key pair and four other trusted public keys."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from govdeploy.trust.keys import init_keys

    init_keys(keys, [])
    for index in range(4):
        public = ec.generate_private_key(ec.SECP256R1()).public_key()
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        (keys / f"other-{index}.pub").write_bytes(pem)


def trusted(keys: Path, count: int) -> list[Path]:
    return [*(keys / f"other-{index}.pub" for index in range(count - 1)), keys / "candidate.pub"]


def covered_files(model: Path) -> list[Path]:
    return [p for p in model.rglob("*") if p.is_file() and p.relative_to(model).as_posix() not in IGNORED]


def digest_of(pairs: dict[str, str]) -> str:
    """The artifact digest formula, over (relative path, hex SHA-256) pairs in path order."""
    lines = (f"{path}\0{pairs[path]}" for path in sorted(pairs, key=lambda p: Path(p).parts))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def reference(model: Path) -> str:
    """Every covered file hashed once, files spread over all cores (largest first)."""
    files = sorted(covered_files(model), key=lambda p: -p.stat().st_size)
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        hexes = list(pool.map(sha256_file, files))
    return digest_of({p.relative_to(model).as_posix(): h for p, h in zip(files, hexes, strict=True)})


def before_sign(model: Path, keys: Path) -> str:
    """Model signing's stock signer, then a second pass reading each file whole."""
    from model_signing import hashing, signing

    config = hashing.Config().set_ignored_paths(paths=[model / n for n in IGNORED], ignore_git_paths=False)
    signing.Config().use_elliptic_key_signer(private_key=keys / "candidate.key").set_hashing_config(
        config
    ).sign(model, model / "candidate.sig")
    pairs = {
        p.relative_to(model).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in covered_files(model)
    }
    return digest_of(pairs)


def before_verify(model: Path, keys: Path) -> str:
    """Model signing's stock verifier tried key after key, as verification went before."""
    from model_signing import hashing, verifying

    for key in trusted(keys, 5):
        config = hashing.Config().set_ignored_paths(
            paths=[model / n for n in IGNORED], ignore_git_paths=False
        )
        try:
            verifying.Config().use_elliptic_key_verifier(public_key=key).set_hashing_config(config).verify(
                model, model / "candidate.sig"
            )
            return ""
        except ValueError:
            continue
    raise SystemExit("the stock verifier refused the directory under every key")


def step(name: str, model: Path, keys: Path) -> None:
    """Run one step in this (child) process; print seconds, peak RSS and the digest as JSON."""
    for module in ("signing", "verifying", "_signing.sign_ec_key", "_signing.sign_sigstore_pb"):
        importlib.import_module(f"model_signing.{module}")  # imports are not timed

    from govdeploy.trust.signatures import sign_and_digest, verify_and_digest

    runs: dict[str, Callable[[], str]] = {
        "sha256": lambda: reference(model),
        "sign": lambda: sign_and_digest(model, keys / "candidate.key", "candidate").artifact_digest,
        "verify-1": lambda: (
            verify_and_digest(model, trusted(keys, 1), "candidate", MODEL, VERSION).artifact_digest
        ),
        "verify-5": lambda: (
            verify_and_digest(model, trusted(keys, 5), "candidate", MODEL, VERSION).artifact_digest
        ),
        "before-sign": lambda: before_sign(model, keys),
        "before-verify-5": lambda: before_verify(model, keys),
    }
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    digest = runs[name]()
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_mb": after.ru_maxrss / 1024, "digest": digest}))


def drop_cache(model: Path) -> None:
    """Evict the directory's own pages from the page cache (the next reads come from the disk)."""
    for path in model.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def run_child(name: str, model: Path, keys: Path) -> dict[str, float | str]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.signing",
        "--step",
        name,
        "--model",
        str(model),
        "--keys",
        str(keys),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"step {name} failed:\n{done.stderr[-2000:]}")
    result: dict[str, float | str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench_size(size_gb: float, repeat: int, cold: bool, before: bool, workdir: Path) -> bool:
    """Benchmark one size; False if a digest disagrees with the reference."""
    size = int(size_gb * GB)
    root = Path(tempfile.mkdtemp(prefix="govdeploy-bench-signing-", dir=workdir))
    try:
        start = time.perf_counter()
        model, keys = root / "model", root / "keys"
        write_model(model, size)
        write_keys(keys)
        total = sum(p.stat().st_size for p in covered_files(model))
        files, took = len(covered_files(model)), time.perf_counter() - start
        print(f"\n{total / GB:.2f} GB in {files} files, written in {took:.1f} s")
        steps = STEPS + (BEFORE if before else [])
        results: dict[str, list[dict[str, float | str]]] = {name: [] for name in steps}
        run_child("sign", model, keys)  # warm-up: page cache, and the bundle the verifiers read
        for round_ in range(max(repeat, 1)):
            for name in steps[round_ % len(steps) :] + steps[: round_ % len(steps)]:  # no step always first
                if cold:
                    drop_cache(model)
                results[name].append(run_child(name, model, keys))
                if name == "before-sign":  # leave the bundle of sign_and_digest for the next round
                    run_child("sign", model, keys)
        return report(results, total)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def report(results: dict[str, list[dict[str, float | str]]], total: int) -> bool:
    """The table and the goals; wall-time ratios are of the best rounds (the least disturbed by other
    work on the machine), CPU-time ratios of the medians."""
    median = {name: statistics.median(float(r["seconds"]) for r in runs) for name, runs in results.items()}
    best = {name: min(float(r["seconds"]) for r in runs) for name, runs in results.items()}
    cpu = {name: statistics.median(float(r["cpu"]) for r in runs) for name, runs in results.items()}
    header = f"{'median s':>9}{'best s':>8}{'GB/s':>7}{'x sha256':>9}{'CPU s':>7}{'x':>6}{'peak RSS MB':>12}"
    print(f"{'step':30}{header}")
    for name, runs in results.items():
        rss = max(float(r["rss_mb"]) for r in runs)
        gbs, ratio, cpu_ratio = (
            total / GB / best[name],
            best[name] / best["sha256"],
            cpu[name] / cpu["sha256"],
        )
        print(
            f"{LABELS[name]:30}{median[name]:>9.2f}{best[name]:>8.2f}{gbs:>7.2f}{ratio:>9.2f}"
            f"{cpu[name]:>7.2f}{cpu_ratio:>6.2f}{rss:>12.0f}"
        )
    expected = str(results["sha256"][0]["digest"])
    agree = all(str(r["digest"]) in (expected, "") for runs in results.values() for r in runs)
    peak = max(float(r["rss_mb"]) for name in STEPS for r in results[name])
    goals = [
        ("sign + digest <= 1.1x sha256", best["sign"] / best["sha256"] <= 1.1),
        ("verify <= 1.1x sha256", best["verify-1"] / best["sha256"] <= 1.1),
        ("verify with 5 keys <= 1.1x with 1", best["verify-5"] / best["verify-1"] <= 1.1),
        (f"peak RSS < 256 MB ({peak:.0f} MB)", peak < 256),
    ]
    print("; ".join(f"{goal}: {'yes' if met else 'NO'}" for goal, met in goals))
    print(f"artifact digests {'agree with' if agree else 'DIFFER from'} the reference: {expected}")
    return agree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16", help="directory sizes in GB, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every step")
    parser.add_argument("--cold", action="store_true", help="drop the directory's pages before each step")
    parser.add_argument("--before", action="store_true", help="also time the previous way (stock API)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary directories go")
    parser.add_argument("--step", choices=[*STEPS, *BEFORE], help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--keys", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        step(args.step, args.model, args.keys)
        return
    workdir = args.workdir or Path(tempfile.gettempdir())
    cache = "cold" if args.cold else "warm"
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; {cache} page cache")
    agree = [
        bench_size(float(size), args.repeat, args.cold, args.before, workdir)
        for size in args.sizes.split(",")
    ]
    if not all(agree):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
