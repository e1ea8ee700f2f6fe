#!/usr/bin/python3
"""Trains the digits models, quantizes them to int8 and writes them as integer-op ONNX graphs.

Why this exists: npuq's kernels have to be shown running real trained networks on real data,
bit-exact with ONNX Runtime. This script is the only place that needs PyTorch; it writes small
committed files that the runner (tools/onnx_runner) and the ctest test read.

Needs (generator only, NOT test dependencies), Debian bookworm:
    apt-get install python3-torch python3-sklearn python3-onnx
Run from the repository root:
    /usr/bin/python3 tools/digits/make_digits_models.py [--out tests/data/digits]
then produce ONNX Runtime's reference outputs with tools/digits/ort_reference.sh.

Data: scikit-learn's load_digits (1797 8x8 images, pixels 0..16), split with SEED into
train / calibration / test (see split()). Pixels p are fed as int8 q = p - 8 with scale 1/16 and
zero point -8 (real value p / 16 exactly), so the graph needs no float QuantizeLinear at its input.

Quantization (static post-training, calibration split only): weights symmetric per output
channel in [-63, 63] (7 bits, ORT's reduce_range, so x86 u8s8 kernels without VNNI cannot
saturate), activations per tensor asymmetric int8 from the calibration min/max (ranges include
0; a ReLU output gets zero point -128, so the clamp at -128 is the ReLU), bias int32 at
x_scale * w_scale[c]. The graph is QOperator form (QLinearConv, QLinearMatMul) in the default
ONNX domain; both models end with DequantizeLinear -> Softmax -> QuantizeLinear (scale 1/256, zero
point -128), which ONNX Runtime's default optimizer fuses into com.microsoft QLinearSoftmax; the
transformer's attention softmax is that QLinearSoftmax node itself.

Prints and writes into <out>/accuracy.txt the float accuracy (PyTorch) and the int8 accuracy of an
integer simulation of the graph written here (numpy, float32 requantization with ties to even).
"""
import argparse
import os
import sys

import numpy as np

SEED = 17


def split(seed=SEED):
    from sklearn.datasets import load_digits
    d = load_digits()
    x = d.images.astype(np.int64)  # [1797, 8, 8], 0..16
    y = d.target.astype(np.int64)
    rng = np.random.RandomState(seed)
    perm = rng.permutation(len(y))
    test, calib, train = perm[:360], perm[360:560], perm[560:]
    return (x[train], y[train]), (x[calib], y[calib]), (x[test], y[test])


def to_int8_input(pixels):
    return (pixels - 8).astype(np.int8)[:, None, :, :]  # [N, 1, 8, 8]


INPUT_SCALE = np.float32(1.0 / 16.0)
INPUT_ZP = -8


# ------------------------------------------------------------------------------------------------
# Models

def build_cnn(torch):
    nn = torch.nn

    class DigitsCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
            self.dw = nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16)
            self.pw = nn.Conv2d(16, 32, 1)
            self.fc = nn.Linear(512, 10, bias=False)

        def forward(self, x, taps=None):
            a1 = torch.relu(self.conv1(x))
            a2 = torch.relu(self.dw(a1))
            a3 = torch.relu(self.pw(a2))
            logits = self.fc(a3.flatten(1))
            if taps is not None:
                taps.extend([a1, a2, a3, logits])
            return logits

    return DigitsCNN()


def train(torch, model, x, y, epochs, lr):
    torch.manual_seed(SEED)
    xt = torch.tensor(x, dtype=torch.float32)[:, None] / 16.0
    yt = torch.tensor(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(SEED)
    for epoch in range(epochs):
        perm = torch.randperm(len(yt), generator=g)
        for i in range(0, len(yt), 32):
            idx = perm[i:i + 32]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    return model


def float_accuracy(torch, model, x, y):
    with torch.no_grad():
        logits = model(torch.tensor(x, dtype=torch.float32)[:, None] / 16.0)
    return float((logits.argmax(1).numpy() == y).mean())


# ------------------------------------------------------------------------------------------------
# Quantization helpers (all scales float32)

def act_quant(lo, hi):
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = np.float32((hi - lo) / 255.0)
    zp = int(np.clip(np.round(-128 - lo / float(scale)), -128, 127))
    return scale, zp


def weight_quant(w):  # per output channel (axis 0), symmetric, 7 bits
    flat = w.reshape(w.shape[0], -1)
    absmax = np.maximum(np.abs(flat).max(axis=1), 1e-8)
    scale = (absmax / 63.0).astype(np.float32)
    q = np.clip(np.round(flat / scale[:, None]), -63, 63).astype(np.int8).reshape(w.shape)
    return q, scale


def bias_quant(b, x_scale, w_scale):
    return np.round(b / (np.float64(x_scale) * w_scale.astype(np.float64))).astype(np.int32)


def requant(acc, scale, zp):
    """ORT's QLinear requantization: float32 acc * float32 scale, ties to even, + zp, clamp."""
    v = acc.astype(np.float32) * scale.astype(np.float32)
    return np.clip(np.rint(v) + zp, -128, 127).astype(np.int8)


def conv_int(torch, xq, x_zp, wq, bias, stride, pad, groups):
    x = torch.tensor(xq.astype(np.float64) - x_zp)
    w = torch.tensor(wq.astype(np.float64))
    acc = torch.nn.functional.conv2d(x, w, None, stride=stride, padding=pad, groups=groups).numpy()
    acc = np.round(acc).astype(np.int64)
    if bias is not None:
        acc += bias[None, :, None, None]
    return acc


# ------------------------------------------------------------------------------------------------
# ONNX graph building

def write_cnn(torch, model, calib_x, test_x, test_y, out_dir, float_acc):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    with torch.no_grad():
        taps = []
        model(torch.tensor(calib_x, dtype=torch.float32)[:, None] / 16.0, taps)
    q1 = act_quant(taps[0].min(), taps[0].max())
    q2 = act_quant(taps[1].min(), taps[1].max())
    q3 = act_quant(taps[2].min(), taps[2].max())
    ql = act_quant(taps[3].min(), taps[3].max())

    sd = {k: v.detach().numpy().astype(np.float64) for k, v in model.state_dict().items()}
    w1, s1 = weight_quant(sd["conv1.weight"])
    wd, sdw = weight_quant(sd["dw.weight"])
    wp, sp = weight_quant(sd["pw.weight"])
    wf, sf = weight_quant(sd["fc.weight"])  # [10, 512], per output class
    b1 = bias_quant(sd["conv1.bias"], INPUT_SCALE, s1)
    bd = bias_quant(sd["dw.bias"], q1[0], sdw)
    bp = bias_quant(sd["pw.bias"], q2[0], sp)

    inits = []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def scalar_q(prefix, q):
        return [const(prefix + "_scale", np.float32(q[0])), const(prefix + "_zero_point", np.int8(q[1]))]

    const("x_scale", np.float32(INPUT_SCALE))
    const("x_zero_point", np.int8(INPUT_ZP))
    nodes = []

    def qconv(name, x, xq_names, w, ws, b, yq, out, **attrs):
        nodes.append(helper.make_node(
            "QLinearConv",
            [x, *xq_names, const(name + "_w", w), const(name + "_w_scale", ws.astype(np.float32)),
             const(name + "_w_zero_point", np.zeros(w.shape[0], np.int8)), *scalar_q(out, yq), const(name + "_b", b)],
            [out], name=name, **attrs))

    qconv("conv1", "image", ["x_scale", "x_zero_point"], w1, s1, b1, q1, "conv1_out",
          kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    qconv("dw", "conv1_out", ["conv1_out_scale", "conv1_out_zero_point"], wd, sdw, bd, q2, "dw_out",
          kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2], group=16)
    qconv("pw", "dw_out", ["dw_out_scale", "dw_out_zero_point"], wp, sp, bp, q3, "pw_out", kernel_shape=[1, 1])
    nodes.append(helper.make_node("Reshape", ["pw_out", const("flatten_shape", np.array([-1, 512], np.int64))],
                                  ["flat"], name="flatten"))
    # QLinearMatMul b is [K, N] with per-column (axis 1) scales.
    nodes.append(helper.make_node(
        "QLinearMatMul",
        ["flat", "pw_out_scale", "pw_out_zero_point", const("fc_w", np.ascontiguousarray(wf.T)),
         const("fc_w_scale", sf.astype(np.float32)), const("fc_w_zero_point", np.zeros(10, np.int8)),
         *scalar_q("logits", ql)],
        ["logits"], name="fc"))
    nodes.append(helper.make_node("DequantizeLinear", ["logits", "logits_scale", "logits_zero_point"], ["logits_f"],
                                  name="dequantize_logits"))
    nodes.append(helper.make_node("Softmax", ["logits_f"], ["probs_f"], name="softmax", axis=1))
    nodes.append(helper.make_node("QuantizeLinear", ["probs_f", const("probs_scale", np.float32(1.0 / 256.0)),
                                                     const("probs_zero_point", np.int8(-128))], ["probs"],
                                  name="quantize_probs"))
    graph = helper.make_graph(
        nodes, "digits_cnn",
        [helper.make_tensor_value_info("image", TensorProto.INT8, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.INT8, ["N", 10]),
         helper.make_tensor_value_info("probs", TensorProto.INT8, ["N", 10])],
        inits)

    # Integer simulation of the graph (independent of ORT and npuq) for the reported accuracy.
    x = to_int8_input(test_x)
    a = requant(conv_int(torch, x, INPUT_ZP, w1, b1, 1, 1, 1), (INPUT_SCALE * s1 / q1[0])[None, :, None, None], q1[1])
    a = requant(conv_int(torch, a, q1[1], wd, bd, 2, 1, 16), (q1[0] * sdw / q2[0])[None, :, None, None], q2[1])
    a = requant(conv_int(torch, a, q2[1], wp, bp, 1, 0, 1), (q2[0] * sp / q3[0])[None, :, None, None], q3[1])
    acc = (a.reshape(len(x), 512).astype(np.int64) - q3[1]) @ wf.T.astype(np.int64)
    logits = requant(acc, (q3[0] * sf / ql[0])[None, :], ql[1])
    int8_acc = float((logits.argmax(1) == test_y).mean())

    doc = ("digits CNN (scikit-learn load_digits), seed %d: float accuracy %.4f, int8 accuracy %.4f on the %d-image "
           "test split (tools/digits/make_digits_models.py)" % (SEED, float_acc, int8_acc, len(test_y)))
    model_proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="npuq tools/digits",
                                    doc_string=doc)
    model_proto.ir_version = 8
    onnx.checker.check_model(model_proto)
    onnx.save(model_proto, os.path.join(out_dir, "digits_cnn.onnx"))
    return float_acc, int8_acc


# ------------------------------------------------------------------------------------------------
# Tiny transformer encoder: 2x2 patches -> 16 tokens of 16 dims, one attention layer (2 heads of
# 8), an MLP, a classifier over the flattened tokens. No LayerNorm and no residual adds: ONNX has
# no integer op for either (ONNX Runtime runs them in float or as com.microsoft contrib ops), so
# every node stays an exact integer contract (see docs/onnx-models.md).

T, D, H, DH, HID = 16, 16, 2, 8, 32


def build_transformer(torch):
    nn = torch.nn

    class DigitsTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Conv2d(1, D, 2, stride=2)  # patch embedding
            self.q = nn.Linear(D, D, bias=False)
            self.k = nn.Linear(D, D, bias=False)
            self.v = nn.Linear(D, D, bias=False)
            self.o = nn.Linear(D, D, bias=False)
            self.fc1 = nn.Linear(D, HID, bias=False)
            self.fc2 = nn.Linear(HID, D, bias=False)
            self.cls = nn.Linear(T * D, 10, bias=False)

        def forward(self, x, taps=None):
            t = taps if taps is not None else []
            e = self.embed(x)                                   # [N, D, 4, 4]
            t.append(e)
            tok = e.flatten(2).transpose(1, 2)                  # [N, T, D]
            q = self.q(tok) / (DH ** 0.5)                       # scale folded into Wq when quantized
            k = self.k(tok)
            v = self.v(tok)
            t.extend([q, k, v])
            heads = lambda z: z.reshape(z.shape[0], T, H, DH).transpose(1, 2)  # [N, H, T, DH]
            s = heads(q) @ heads(k).transpose(2, 3)             # [N, H, T, T]
            t.append(s)
            p = torch.softmax(s, dim=-1)
            a = (p @ heads(v)).transpose(1, 2).reshape(-1, T, D)  # [N, T, D]
            t.append(a)
            o = self.o(a)
            t.append(o)
            h = torch.relu(self.fc1(o))
            t.append(h)
            m = self.fc2(h)
            t.append(m)
            logits = self.cls(m.flatten(1))
            t.append(logits)
            return logits

    return DigitsTransformer()


def write_transformer(torch, model, calib_x, test_x, test_y, out_dir, float_acc):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    with torch.no_grad():
        taps = []
        model(torch.tensor(calib_x, dtype=torch.float32)[:, None] / 16.0, taps)
    names = ["embed", "q", "k", "v", "scores", "attn", "proj", "mlp_hidden", "mlp_out", "logits"]
    aq = {n: act_quant(t.min(), t.max()) for n, t in zip(names, taps)}
    sd = {k: v.detach().numpy().astype(np.float64) for k, v in model.state_dict().items()}

    inits, nodes = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    for n, q in aq.items():
        const(n + "_scale", np.float32(q[0]))
        const(n + "_zero_point", np.int8(q[1]))
    const("x_scale", np.float32(INPUT_SCALE))
    const("x_zero_point", np.int8(INPUT_ZP))
    const("probs_scale", np.float32(1.0 / 256.0))
    const("probs_zero_point", np.int8(-128))

    def qp(n):
        return [n + "_scale", n + "_zero_point"]

    we, se = weight_quant(sd["embed.weight"])
    be = bias_quant(sd["embed.bias"], INPUT_SCALE, se)
    nodes.append(helper.make_node(
        "QLinearConv", ["image", "x_scale", "x_zero_point", const("embed_w", we), const("embed_w_scale", se),
                        const("embed_w_zero_point", np.zeros(D, np.int8)), *qp("embed"), const("embed_b", be)],
        ["embed"], name="patch_embed", kernel_shape=[2, 2], strides=[2, 2]))
    nodes.append(helper.make_node("Reshape", ["embed", const("shape_ndt", np.array([0, D, T], np.int64))], ["embed_flat"],
                                  name="embed_flatten"))
    nodes.append(helper.make_node("Transpose", ["embed_flat"], ["tokens"], name="tokens", perm=[0, 2, 1]))

    def linear(name, x, xname, w, out):  # torch Linear weight [out, in] -> b [in, out] per column
        wq, ws = weight_quant(w)
        nodes.append(helper.make_node(
            "QLinearMatMul", [x, *qp(xname), const(name + "_w", np.ascontiguousarray(wq.T)), const(name + "_w_scale", ws),
                              const(name + "_w_zero_point", np.zeros(wq.shape[0], np.int8)), *qp(out)],
            [out], name=name))

    linear("q_proj", "tokens", "embed", sd["q.weight"] / (DH ** 0.5), "q")
    linear("k_proj", "tokens", "embed", sd["k.weight"], "k")
    linear("v_proj", "tokens", "embed", sd["v.weight"], "v")
    const("shape_heads", np.array([0, T, H, DH], np.int64))
    for z in ["q", "k", "v"]:
        nodes.append(helper.make_node("Reshape", [z, "shape_heads"], [z + "_split"], name=z + "_split"))
    nodes.append(helper.make_node("Transpose", ["q_split"], ["q_heads"], name="q_heads", perm=[0, 2, 1, 3]))
    nodes.append(helper.make_node("Transpose", ["k_split"], ["k_heads_t"], name="k_heads_t", perm=[0, 2, 3, 1]))
    nodes.append(helper.make_node("Transpose", ["v_split"], ["v_heads"], name="v_heads", perm=[0, 2, 1, 3]))
    nodes.append(helper.make_node("QLinearMatMul", ["q_heads", *qp("q"), "k_heads_t", *qp("k"), *qp("scores")], ["scores"],
                                  name="scores"))
    # ONNX Runtime's integer softmax, the contract npuq implements (softmax_qlinear.hpp); ORT's
    # optimizer would fuse DequantizeLinear -> Softmax -> QuantizeLinear into it anyway, but only
    # when the float intermediates are not graph outputs, so the explicit node keeps every session
    # (and the debug copy of tools/digits/ort_reference.sh) on the same arithmetic.
    nodes.append(helper.make_node("QLinearSoftmax", ["scores", *qp("scores"), "probs_scale", "probs_zero_point"], ["attn_probs"],
                                  name="attention_softmax", domain="com.microsoft", axis=-1, opset=13))
    nodes.append(helper.make_node("QLinearMatMul", ["attn_probs", "probs_scale", "probs_zero_point", "v_heads", *qp("v"),
                                                    *qp("attn")], ["attn_heads"], name="attention_values"))
    nodes.append(helper.make_node("Transpose", ["attn_heads"], ["attn_merge"], name="attn_merge", perm=[0, 2, 1, 3]))
    nodes.append(helper.make_node("Reshape", ["attn_merge", const("shape_ntd", np.array([0, T, D], np.int64))], ["attn"],
                                  name="attn_concat_heads"))
    linear("out_proj", "attn", "attn", sd["o.weight"], "proj")
    linear("mlp_fc1", "proj", "proj", sd["fc1.weight"], "mlp_hidden")
    linear("mlp_fc2", "mlp_hidden", "mlp_hidden", sd["fc2.weight"], "mlp_out")
    nodes.append(helper.make_node("Reshape", ["mlp_out", const("shape_flat", np.array([0, T * D], np.int64))], ["flat"],
                                  name="flatten"))
    linear("classifier", "flat", "mlp_out", sd["cls.weight"], "logits")
    nodes.append(helper.make_node("DequantizeLinear", ["logits", *qp("logits")], ["logits_f"], name="dequantize_logits"))
    nodes.append(helper.make_node("Softmax", ["logits_f"], ["probs_f"], name="softmax", axis=-1))
    nodes.append(helper.make_node("QuantizeLinear", ["probs_f", "probs_scale", "probs_zero_point"], ["probs"],
                                  name="quantize_probs"))
    graph = helper.make_graph(
        nodes, "digits_transformer",
        [helper.make_tensor_value_info("image", TensorProto.INT8, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.INT8, ["N", 10]),
         helper.make_tensor_value_info("probs", TensorProto.INT8, ["N", 10])],
        inits)
    doc = ("digits transformer encoder (scikit-learn load_digits), seed %d: float accuracy %.4f on the %d-image test split "
           "(tools/digits/make_digits_models.py); int8 accuracy: tests/data/digits/accuracy.txt" % (SEED, float_acc, len(test_y)))
    model_proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)],
                                    producer_name="npuq tools/digits", doc_string=doc)
    model_proto.ir_version = 8
    onnx.checker.check_model(model_proto)
    onnx.save(model_proto, os.path.join(out_dir, "digits_transformer.onnx"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/data/digits")
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    import torch
    from onnx import numpy_helper
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    (trx, tr_y), (cx, _), (tx, ty) = split()

    numpy_helper_save = lambda arr, name: open(os.path.join(args.out, name + ".pb"), "wb").write(
        numpy_helper.from_array(arr, name).SerializeToString())
    numpy_helper_save(to_int8_input(tx), "test_images")
    numpy_helper_save(ty.astype(np.int64), "test_labels")

    cnn = train(torch, build_cnn(torch), trx, tr_y, args.epochs, 3e-3)
    facc = float_accuracy(torch, cnn, tx, ty)
    facc, iacc = write_cnn(torch, cnn, cx, tx, ty, args.out, facc)
    lines = ["digits_cnn: seed %d, torch %s, float accuracy %.4f, int8 accuracy (integer simulation) %.4f, %d test images" % (
        SEED, torch.__version__, facc, iacc, len(ty))]
    torch.manual_seed(SEED)
    tr = train(torch, build_transformer(torch), trx, tr_y, args.epochs, 3e-3)
    tacc = float_accuracy(torch, tr, tx, ty)
    write_transformer(torch, tr, cx, tx, ty, args.out, tacc)
    lines.append("digits_transformer: seed %d, torch %s, float accuracy %.4f, %d test images" % (
        SEED, torch.__version__, tacc, len(ty)))
    print("\n".join(lines))
    with open(os.path.join(args.out, "accuracy.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
