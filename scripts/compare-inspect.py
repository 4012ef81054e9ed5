#!/usr/bin/env python3
"""Compare `coremlq inspect --json` with coremltools' own view of Core ML models.

Run it with a Python that has coremltools 9.0 (the fixture environment A of
`tests/fixtures/generate.py` has it):

    tests/fixtures/.venv-fixtures/A/bin/python scripts/compare-inspect.py MODEL_OR_FOLDER...

Every `.mlmodel` file and `.mlpackage` folder named (folders are searched recursively;
`--any-file` also takes every other file found in them, to check that non-models are refused
cleanly) is loaded with `coremltools.utils.load_spec` and indexed with `coremlq inspect --json`
(and the table, without `--json`). One line per model tells the outcome:

    ok               both read it and agree on model type, specification version, isUpdatable,
                     inputs/outputs, pipeline members, networks, layer names, types, inputs,
                     outputs and every weight tensor's field, count, shape, storage, bits and bytes
    rejected         coremltools cannot load it and coremlq exits 1 with a one-line error
    MISMATCH         both read it but disagree (the differences follow)
    CRASH            coremlq exited with a status other than 0 or 1 (a panic is 101)
    HANG             coremlq did not answer within --timeout seconds
    ONLY-COREMLQ     coremlq reads it, coremltools refuses it (listed, not a failure)
    COREMLQ-REJECTS  coremltools reads it, coremlq refuses it

The exit status is 1 when any model is MISMATCH, CRASH, HANG or COREMLQ-REJECTS.
`--write-view FILE` writes coremltools' view of every model that coremltools reads (and the
provenance facts `--provenance` can fill in) as JSON, the format `tests/inspect_real.rs`
compares against.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))
from coreml_view import NN_TYPES, list_wps, prod  # noqa: E402


def describe_wp(wp, name, shape):
    """One WeightParams as coremlq documents it: count, shape, storage, nbits, bytes."""
    present = [f.name for f, _ in wp.ListFields()]
    stores = [s for s in ("floatValue", "float16Value", "rawValue", "int8RawValue")
              if s in present and len(getattr(wp, s))]
    q = wp.quantization if wp.HasField("quantization") else None
    qkind = q.WhichOneof("QuantizationType") if q is not None else None
    qbits = q.numberOfBits if q is not None else 0
    if len(stores) > 1:
        storage, nbits = "mixed", None
    elif not stores:
        storage, nbits = "empty", None
    elif stores[0] == "floatValue":
        storage, nbits = "float32", 32
    elif stores[0] == "float16Value":
        storage, nbits = "float16", 16
    elif stores[0] == "int8RawValue":
        storage, nbits = "int8", 8
    elif qkind == "linearQuantization" and 1 <= qbits <= 8:
        storage, nbits = "linear", qbits
    elif qkind == "lookupTableQuantization" and 1 <= qbits <= 8:
        storage, nbits = "lut", qbits
    else:
        storage, nbits = "mixed", None
    # count: stored floats or halves; for quantized and int8 tensors the shape's product.
    if len(wp.floatValue):
        count = len(wp.floatValue)
    elif len(wp.rawValue):
        if shape:
            count = prod(shape)
        elif 1 <= qbits <= 8:
            count = len(wp.rawValue) * 8 // qbits
        else:
            count = len(wp.rawValue)
    elif len(wp.int8RawValue):
        count = prod(shape) if shape else len(wp.int8RawValue)
    elif len(wp.float16Value):
        count = len(wp.float16Value) // 2
    else:
        count = 0
    # shape: the view coremltools quantizes with; None where its walk defines none (coremlq may
    # still give one, e.g. for layerNormalization or convolution3d), and then not compared.
    return {"field": name, "count": count, "shape": shape, "storage": storage,
            "nbits": nbits, "bytes": wp.ByteSize()}


def walk_nn(nn, path, layers, nets):
    nets.append(path)
    for li, layer in enumerate(nn.layers):
        t = layer.WhichOneof("layer")
        lp = getattr(layer, t) if t else None
        wps = []
        if lp is not None:
            list_wps(lp, t, lp, "", wps, describe_wp)
        # Activation parameters inside recurrent layers are never quantized: coremlq lists
        # them last, coremltools' field order first.
        act = [w for w in wps if w["field"].startswith("activation")]
        rest = [w for w in wps if not w["field"].startswith("activation")]
        layers.append({"name": layer.name, "type": t or "", "network": path,
                       "inputs": list(layer.input), "outputs": list(layer.output),
                       "is_updatable": bool(layer.isUpdatable), "weights": rest + act})
        if t == "branch":
            for member in ("ifBranch", "elseBranch"):
                if lp.HasField(member):
                    walk_nn(getattr(lp, member), "%s.layers[%d].branch.%s" % (path, li, member),
                            layers, nets)
        elif t == "loop":
            for member in ("conditionNetwork", "bodyNetwork"):
                if lp.HasField(member):
                    walk_nn(getattr(lp, member), "%s.layers[%d].loop.%s" % (path, li, member),
                            layers, nets)


ARRAY_DTYPES = {65568: " float32", 65600: " float64", 131104: " int32", 131080: " int8",
                65552: " float16"}
COLOR_SPACES = {10: " grayscale", 20: " RGB", 30: " BGR", 40: " grayscale float16"}


def array_kind(a):
    flex = " (flexible)" if a.WhichOneof("ShapeFlexibility") else ""
    dims = ",".join(str(int(d)) for d in a.shape)
    return "multiArray [%s]%s%s" % (dims, ARRAY_DTYPES.get(a.dataType, ""), flex)


def feature_kind(ft):
    t = ft.WhichOneof("Type")
    if t == "int64Type":
        kind = "int64"
    elif t == "doubleType":
        kind = "double"
    elif t == "stringType":
        kind = "string"
    elif t == "imageType":
        im = ft.imageType
        flex = " (flexible)" if im.WhichOneof("SizeFlexibility") else ""
        kind = "image %dx%d%s%s" % (im.width, im.height, COLOR_SPACES.get(im.colorSpace, ""), flex)
    elif t == "multiArrayType":
        kind = array_kind(ft.multiArrayType)
    elif t == "dictionaryType":
        key = "string" if ft.dictionaryType.WhichOneof("KeyType") == "stringKeyType" else "int64"
        kind = "dictionary<%s,double>" % key
    elif t == "sequenceType":
        item = "string" if ft.sequenceType.WhichOneof("Type") == "stringType" else "int64"
        kind = "sequence<%s>" % item
    elif t == "stateType":
        st = ft.stateType
        kind = "state " + array_kind(st.arrayType) if st.WhichOneof("Type") else "state"
    else:
        kind = ""
    if ft.isOptional:
        kind += " (optional)"
    return kind


def features(fs):
    return [{"name": f.name, "type": feature_kind(f.type)} for f in fs]


def walk_model(m, path, name, models, layers, nets):
    t = m.WhichOneof("Type") or ""
    entry = {"path": path, "name": name, "type": t,
             "specification_version": m.specificationVersion,
             "is_updatable": bool(m.isUpdatable),
             "inputs": features(m.description.input),
             "outputs": features(m.description.output)}
    models.append(entry)
    pre = path + "." if path else ""
    if t in NN_TYPES:
        walk_nn(getattr(m, t), pre + t, layers, nets)
    elif t in ("pipeline", "pipelineClassifier", "pipelineRegressor"):
        pl = m.pipeline if t == "pipeline" else getattr(m, t).pipeline
        member = "pipeline" if t == "pipeline" else t + ".pipeline"
        for i, sub in enumerate(pl.models):
            sub_name = pl.names[i] if i < len(pl.names) else None
            walk_model(sub, "%s%s.models[%d]" % (pre, member, i), sub_name, models, layers, nets)


def model_file(path):
    """The model file coremlq reads for `path` (a package's model file, else the file)."""
    if os.path.isdir(path):
        manifest = os.path.join(path, "Manifest.json")
        try:
            with open(manifest) as f:
                m = json.load(f)
            root = m["itemInfoEntries"][m["rootModelIdentifier"]]["path"]
            return os.path.join(path, "Data", root)
        except (OSError, KeyError, ValueError):
            return os.path.join(path, "Data", "com.apple.CoreML", "model.mlmodel")
    return path


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_spec(path):
    """coremltools.utils.load_spec, imported quietly (it logs the native parts it lacks)."""
    import logging

    logging.disable(logging.WARNING)
    import coremltools as ct

    return ct.utils.load_spec(path)


def coremltools_view(path):
    """coremltools' view of the model at `path`, or raises what coremltools raises."""
    spec = load_spec(path)
    models, layers, nets = [], [], []
    walk_model(spec, "", None, models, layers, nets)
    for m in models:
        # a model's networks are those whose path starts with its own path
        pre = m["path"] + "." if m["path"] else ""
        m["networks"] = [n for n in nets if n.startswith(pre) and
                         not any(n.startswith(o["path"] + ".") for o in models
                                 if o["path"] != m["path"] and o["path"].startswith(pre))]
    root = models[0]
    meta = spec.description.metadata
    weights = [w for l in layers for w in l["weights"]]
    return {
        "file_bytes": os.path.getsize(model_file(path)),
        "model_type": root["type"],
        "specification_version": root["specification_version"],
        "is_updatable": root["is_updatable"],
        "inputs": root["inputs"],
        "outputs": root["outputs"],
        "networks": len(nets),
        "models": models,
        "layers": layers,
        "weight_tensors": len(weights),
        "weight_bytes": sum(w["bytes"] for w in weights),
        "metadata": {"author": meta.author, "shortDescription": meta.shortDescription,
                     "license": meta.license, "userDefined": dict(sorted(meta.userDefined.items()))},
    }


# ------------------------------------------------------------------------------------------
# comparison
# ------------------------------------------------------------------------------------------

COMPARED_MODEL_KEYS = ("path", "name", "type", "specification_version", "is_updatable",
                       "inputs", "outputs", "networks")
COMPARED_LAYER_KEYS = ("name", "type", "network", "inputs", "outputs", "is_updatable")
COMPARED_WEIGHT_KEYS = ("field", "count", "shape", "storage", "nbits", "bytes")


def compare(view, ours):
    """The differences between coremltools' view and coremlq's JSON, as text lines."""
    diffs = []

    def check(what, a, b):
        if a != b:
            diffs.append("%s: coremlq %s, coremltools %s" % (what, json.dumps(a), json.dumps(b)))

    for key in ("file_bytes", "model_type", "specification_version", "is_updatable", "inputs",
                "outputs", "networks", "weight_tensors", "weight_bytes"):
        check(key, ours.get(key), view[key])
    check("model count", len(ours.get("models", [])), len(view["models"]))
    for om, vm in zip(ours.get("models", []), view["models"]):
        for key in COMPARED_MODEL_KEYS:
            check("model %r %s" % (vm["path"], key), om.get(key), vm[key])
    ol, vl = ours.get("layers", []), view["layers"]
    check("layer count", len(ol), len(vl))
    for i, (a, b) in enumerate(zip(ol, vl)):
        where = "layer %d %r" % (i, b["name"])
        for key in COMPARED_LAYER_KEYS:
            check("%s %s" % (where, key), a.get(key), b[key])
        aw, bw = a.get("weights", []), b["weights"]
        check("%s weight fields" % where, [w.get("field") for w in aw], [w["field"] for w in bw])
        for x, y in zip(aw, bw):
            for key in COMPARED_WEIGHT_KEYS[1:]:
                if key == "shape" and y[key] is None:
                    continue
                check("%s %s %s" % (where, y["field"], key), x.get(key), y[key])
        if len(diffs) > 40:
            diffs.append("... (more differences not shown)")
            break
    return diffs


def run(cmd, timeout):
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        return None, "", ""


def gather(args):
    found = []
    for root in args.models:
        if os.path.isdir(root) and not root.rstrip("/").endswith(".mlpackage"):
            for d, dirs, files in os.walk(root):
                dirs.sort()
                for x in list(dirs):
                    if x.endswith(".mlpackage"):
                        found.append(os.path.join(d, x))
                        dirs.remove(x)
                for x in sorted(files):
                    if args.any_file or x.endswith(".mlmodel"):
                        found.append(os.path.join(d, x))
        else:
            found.append(root.rstrip("/"))
    return found


def check_model(path, args):
    """(outcome, detail lines, coremltools view or None) for one model."""
    try:
        if not (os.path.isdir(path) or os.path.isfile(path)):
            # a FIFO or device: coremltools would block reading it
            raise OSError("not a regular file or folder")
        view = coremltools_view(path)
        ct_error = None
    except Exception as e:  # coremltools raises many kinds for bad files
        view, ct_error = None, "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
    rc, out, err = run([args.coremlq, "inspect", "--json", path], args.timeout)
    rc_table, table, err_table = run([args.coremlq, "inspect", "--all", path], args.timeout)
    if rc is None or rc_table is None:
        return "HANG", ["no answer within %s s" % args.timeout], view
    if rc not in (0, 1) or rc_table not in (0, 1):
        return "CRASH", [l for l in (err + err_table).splitlines()[:6]], view
    if rc != rc_table:
        return "MISMATCH", ["--json exits %d, the table %d" % (rc, rc_table)], view
    if rc == 1:
        lines = err.strip().splitlines()
        detail = lines[:1]
        if len(lines) != 1 or not lines[0].startswith("error: "):
            return "CRASH", ["error is not one line starting with 'error: '"] + lines[:4], view
        if view is None:
            return "rejected", detail + ["coremltools: " + ct_error], view
        if (view["model_type"] == "" and view["specification_version"] == 0
                and not view["inputs"] and not view["outputs"]):
            # protobuf reads an empty file (or one of unknown fields only) as an empty Model;
            # coremlq refuses such a file on purpose.
            return "rejected", detail + ["coremltools: reads it as an empty Model"], None
        return "COREMLQ-REJECTS", detail, view
    if view is None:
        warnings = ["coremlq warning: " + w for w in json.loads(out).get("warnings", [])]
        return "ONLY-COREMLQ", ["coremltools: " + ct_error] + warnings, view
    diffs = compare(view, json.loads(out))
    if diffs:
        return "MISMATCH", diffs, view
    return "ok", [], view


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help=".mlmodel files, .mlpackage folders or folders")
    ap.add_argument("--coremlq", default=os.path.join(REPO, "target", "release", "coremlq"),
                    help="the coremlq binary (default: target/release/coremlq)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per coremlq run")
    ap.add_argument("--any-file", action="store_true",
                    help="in folders, also check files that are not named .mlmodel")
    ap.add_argument("--write-view", metavar="FILE",
                    help="write coremltools' view of every model it reads to FILE (JSON)")
    ap.add_argument("--relative-to", metavar="DIR",
                    help="with --write-view: key the views by path relative to DIR")
    args = ap.parse_args()

    bad = 0
    views = {}
    counts = {}
    for path in gather(args):
        outcome, detail, view = check_model(path, args)
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome in ("MISMATCH", "CRASH", "HANG", "COREMLQ-REJECTS"):
            bad += 1
        desc = ""
        if view is not None:
            desc = " (%s, spec %d, %d layers, %d tensors)" % (
                view["model_type"], view["specification_version"], len(view["layers"]),
                view["weight_tensors"])
        print("%-15s %s%s" % (outcome, path, desc))
        for line in detail:
            print("    " + line)
        if view is not None and args.write_view:
            key = os.path.relpath(path, args.relative_to) if args.relative_to else path
            view["sha256"] = sha256(model_file(path))
            views[key] = view
    print("summary: " + ", ".join("%d %s" % (n, k) for k, n in sorted(counts.items())))
    if args.write_view:
        with open(args.write_view, "w") as f:
            json.dump(views, f, indent=1, sort_keys=True, ensure_ascii=False)
            f.write("\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
