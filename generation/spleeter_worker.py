"""Spleeter worker: separates a batch of audio files in one process (run by the Spleeter virtualenv).

Spleeter 2.4.2 pins tensorflow 2.12 and numpy<2, so it cannot share mashlab's
environment; `generation/separation.py` runs this script with the interpreter
of `.venv-spleeter` and talks to it in JSON. It imports only Spleeter, its
dependencies and the standard library (never mashlab or Django).

    stdin:  {"model": "spleeter:2stems" | "spleeter:4stems",
             "jobs": [{"input": "/abs/clip.wav", "output_dir": "/abs/sep"}, ...],
             "chunk": CHUNK, "overlap": OVERLAP}   (samples; optional, for tests)
    stdout: one JSON object: {"ok": true, "model": ..., "model_dir": ..., "load_s": ...,
             "results": [{"input", "stems": {name: path}, "seconds", "error"}]}
            or {"ok": false, "error": "weights_missing" | "download_failed" | "bad_job" | "crashed",
                "message": ..., "model_dir": ...}
    stderr: progress lines "[spleeter] i/n name seconds", plus TensorFlow's own noise.

TensorFlow starts and the checkpoint is restored once per call, not once per
file: the graph is built from placeholders and every file is one session run,
or, for a file longer than CHUNK + OVERLAP samples (a whole recording for
`ingest --segment auto`), one run per chunk of CHUNK samples, neighbours
overlapping by OVERLAP and cross-faded linearly over it. Spleeter holds a
whole input in memory at once (measured: 2.7 GB for 120 s, 6.0 GB for 318 s
of stereo), so chunks keep a 10-minute file near the 60 s figure; CHUNK is
five of Spleeter's own 512-frame segments, where its output already changes
model context.
Each stem is written as a 32-bit float WAV at 44.1 kHz (temporary file, then
rename), so nothing is clipped or quantised on the way back.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

MODELS = {"spleeter:2stems": "2stems", "spleeter:4stems": "4stems"}
CHUNK = 5 * 512 * 1024  # samples at 44.1 kHz (59.4 s): five 512-frame Spleeter segments of hop 1024
OVERLAP = 2 * 44100  # samples cross-faded between neighbouring chunks (2 s)
EXIT_WEIGHTS, EXIT_BAD_JOB, EXIT_CRASH = 3, 4, 5


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _progress(line: str) -> None:
    sys.stderr.write(f"[spleeter] {line}\n")
    sys.stderr.flush()


def _model_dir(name: str) -> Path:
    root = Path(os.environ.get("MODEL_PATH") or "pretrained_models")
    return (root / name).resolve()


def _weights_present(model_dir: Path) -> bool:
    return (model_dir / "checkpoint").is_file() and any(model_dir.glob("model.*"))


class _Graph:
    """Spleeter's prediction graph, built once from placeholders, with its checkpoint restored once."""

    def __init__(self, descriptor: str, model_dir: Path) -> None:
        import tensorflow as tf
        from spleeter.model import EstimatorSpecBuilder, InputProviderFactory
        from spleeter.utils.configuration import load_configuration

        tf.compat.v1.disable_eager_execution()
        self.params = load_configuration(descriptor)
        self.params["model_dir"] = str(model_dir)
        self.params["MWF"] = False
        self.sample_rate = int(self.params["sample_rate"])
        self.graph = tf.Graph()
        with self.graph.as_default():
            provider = InputProviderFactory.get(self.params)
            self.features = provider.get_input_dict_placeholders()
            builder = EstimatorSpecBuilder(self.features, self.params)
            self.outputs = {k: v for k, v in builder.outputs.items() if k != "audio_id"}
            saver = tf.compat.v1.train.Saver()
            self.session = tf.compat.v1.Session(graph=self.graph)
            saver.restore(self.session, tf.train.latest_checkpoint(str(model_dir)))

    def separate(self, waveform, *, chunk: int = CHUNK, overlap: int = OVERLAP):
        """waveform: (n, 2) float32 at 44.1 kHz -> {instrument: (n, 2) float32}, in chunks when it is long."""
        import numpy as np

        n = waveform.shape[0]
        overlap = 2 * (overlap // 2)  # even, so that neighbouring ramps cover the same samples
        if n <= chunk + overlap:
            return {k: v[:n] for k, v in self._run(waveform).items()}
        ramp = ((np.arange(overlap, dtype=np.float32) + 0.5) / overlap)[:, None]
        out: dict = {}
        for start in range(0, n, chunk):
            a, b = max(0, start - overlap // 2), min(n, start + chunk + overlap // 2)
            if n - b < overlap:  # a short last piece joins this chunk
                b = n
            for name, part in self._run(waveform[a:b]).items():
                part = np.array(part[: b - a], dtype=np.float32)
                if a > 0:
                    part[:overlap] *= ramp
                if b < n:
                    part[-overlap:] *= ramp[::-1]
                out.setdefault(name, np.zeros((n, part.shape[1]), dtype=np.float32))[a:b] += part
            if b == n:
                break
        return out

    def _run(self, waveform):
        feed = {self.features["waveform"]: waveform, self.features["audio_id"]: ""}
        return self.session.run(self.outputs, feed_dict=feed)


def _load(path: Path, sample_rate: int):
    """(n, 2) float32 at `sample_rate`, decoded by Spleeter's ffmpeg adapter (any format ffmpeg reads)."""
    import numpy as np
    from spleeter.audio.adapter import AudioAdapter

    waveform, _ = AudioAdapter.default().load(str(path), sample_rate=sample_rate)
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim == 1:
        waveform = waveform[:, None]
    if waveform.shape[1] == 1:
        waveform = np.repeat(waveform, 2, axis=1)
    elif waveform.shape[1] > 2:
        waveform = waveform[:, :2]
    return waveform


def _write_wav(path: Path, data, sample_rate: int) -> None:
    """32-bit float WAV via a temporary file in the same folder and an atomic rename."""
    import numpy as np
    from scipy.io import wavfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".part")
    os.close(fd)
    try:
        wavfile.write(tmp, sample_rate, np.ascontiguousarray(data, dtype=np.float32))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main() -> int:
    try:
        job = json.loads(sys.stdin.read())
        descriptor = job["model"]
        jobs = [(Path(j["input"]), Path(j["output_dir"])) for j in job["jobs"]]
        chunking = {"chunk": int(job.get("chunk", CHUNK)), "overlap": int(job.get("overlap", OVERLAP))}
        if not 2 <= chunking["overlap"] < chunking["chunk"]:
            raise ValueError(f"need 2 <= overlap < chunk samples, got {chunking}")
    except (ValueError, KeyError, TypeError) as exc:
        _emit({"ok": False, "error": "bad_job", "message": f"malformed job on stdin: {exc}"})
        return EXIT_BAD_JOB
    if descriptor not in MODELS:
        _emit({"ok": False, "error": "bad_job", "message": f"unknown model {descriptor!r}; one of {sorted(MODELS)}"})
        return EXIT_BAD_JOB
    model_dir = _model_dir(MODELS[descriptor])
    if not _weights_present(model_dir):
        # Spleeter would now try to download the weights from GitHub (and leave an empty folder
        # behind when that fails); say what is missing instead.
        _emit({"ok": False, "error": "weights_missing", "model_dir": str(model_dir),
               "message": f"no checkpoint in {model_dir}"})
        return EXIT_WEIGHTS

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.perf_counter()
    try:
        graph = _Graph(descriptor, model_dir)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one JSON line
        kind = "download_failed" if "http" in type(exc).__module__ or "download" in str(exc).lower() else "crashed"
        _emit({"ok": False, "error": kind, "model_dir": str(model_dir),
               "message": f"{type(exc).__name__}: {exc}".splitlines()[0]})
        return EXIT_WEIGHTS if kind == "download_failed" else EXIT_CRASH
    load_s = time.perf_counter() - started
    _progress(f"model {descriptor} loaded from {model_dir} in {load_s:.1f} s")

    results = []
    for i, (source, out_dir) in enumerate(jobs, start=1):
        t0 = time.perf_counter()
        entry: dict = {"input": str(source), "stems": {}, "seconds": 0.0, "error": None}
        try:
            waveform = _load(source, graph.sample_rate)
            prediction = graph.separate(waveform, **chunking)
            for name, data in prediction.items():
                target = out_dir / f"{name}.wav"
                _write_wav(target, data[: waveform.shape[0]], graph.sample_rate)
                entry["stems"][name] = str(target)
        except Exception as exc:  # noqa: BLE001 - one file's failure is reported, the batch goes on
            entry["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        results.append(entry)
        state = "failed" if entry["error"] else f"{entry['seconds']:.1f} s"
        _progress(f"{i}/{len(jobs)} {source.name} {state}")
    _emit({"ok": True, "model": descriptor, "model_dir": str(model_dir), "load_s": round(load_s, 3),
           "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
