"""MAX pooling's forward on the CPU in vectors of output columns, for column strides 1 and 2.

Why: a scalar window loop branches on every comparison, and data decides the branch, so it
mispredicts; numba does not vectorise it (a strided gather with a select measured 3x slower). Here
an LLVM tile (engine.kernels.cpu.llvm_tiles) takes `lanes` outputs of one row at once: for each
window element in Caffe's (row, column) order it loads the lanes' values (stride 2: two vectors,
the even lanes shuffled out), compares and selects value and index. A strict greater-than keeps
the first maximum and never takes NaN, as Caffe's loop does.

Each plane is first copied into a buffer bordered with -inf, so every window is whole: a padded or
clipped position never wins a strict comparison, which is Caffe's window clipping. A window with
no value above -FLT_MAX gives -FLT_MAX and index -1, as in Caffe.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types

from engine.kernels.cpu import direct_tile
from engine.kernels.cpu.llvm_tiles import TileFunction, build_dispatch, compile_module
from engine.kernels.cpu.threads import thread_count

FLT_MAX = float(np.finfo(np.float32).max)
STRIDES = (1, 2)
WIDTHS = (256, 512)


def _name(itemsize: int, bits: int, stride: int | None = None) -> str:
    base = f"brewnet_max_pool_{'f64' if itemsize == 8 else 'f32'}_{bits}"
    return base if stride is None else f"{base}_s{stride}"


def _build_tile(module, itemsize: int, bits: int, stride: int):
    """The tile for one row's `lanes` outputs with column stride `stride` (see max_tile)."""
    t = TileFunction(module, itemsize, bits, _name(itemsize, bits, stride), "iqqpipq")
    count, offsets, index_offsets, src, base, best_out, arg_out = t.fn.args
    b, ir, lanes = t.b, t.ir, t.lanes
    index_vec = ir.VectorType(t.i64, lanes)
    lane_steps = ir.Constant(index_vec, [j * stride for j in range(lanes)])
    even = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [2 * j for j in range(lanes)])

    def step(k, carried):
        best, arg = carried[0]
        first = t.element(src, b.load(t.element(offsets, k)))
        values = t.load_vector(first)
        if stride == 2:
            values = b.shuffle_vector(values, t.load_vector(t.element(first, lanes)), even)
        index = b.add(t.splat(b.add(base, b.load(t.element(index_offsets, k))), index_vec), lane_steps)
        greater = b.fcmp_ordered(">", values, best)
        return [[b.select(greater, values, best), b.select(greater, index, arg)]]

    initial = [[ir.Constant(t.vec, [-FLT_MAX] * lanes), ir.Constant(index_vec, [-1] * lanes)]]
    best, arg = t.reduction(count, initial, step)[0]
    b.store(best, t.vector_at(best_out), align=itemsize)
    b.store(arg, b.bitcast(arg_out, index_vec.as_pointer()), align=8)
    b.ret_void()
    return t.fn


def _build(module) -> list[str]:
    """Every tile into module, exported per dtype and width with the stride (1 or 2) as the first
    argument; their names."""
    names = []
    for size in (4, 8):
        for bits in WIDTHS:
            build_dispatch(module, _name(size, bits), [_build_tile(module, size, bits, s) for s in STRIDES])
            names.append(_name(size, bits))
    return names


_ENGINE = compile_module("brewnet_max_pool_tiles", _build)


#: narrower output rows stay with the scalar kernel: a tile's fixed costs per row, and its empty
#: lanes, outweigh its gain there (LeNet's pool2, rows of 4: 0.14 ms scalar, 0.20 ms in tiles)
MIN_WIDTH = 8


def suits(stride_w: int, out_width: int, dtype) -> bool:
    """Whether the tiles take a MAX pooling with this column stride, output row width and dtype."""
    return (_ENGINE is not None and stride_w in STRIDES and out_width >= MIN_WIDTH
            and np.dtype(dtype) in (np.float32, np.float64))


_SIG = types.void(types.int64, types.int64, types.voidptr, types.voidptr, types.voidptr, types.int64,
                  types.voidptr, types.voidptr)
_f32_256, _f32_512 = (types.ExternalFunction(_name(4, bits), _SIG) for bits in WIDTHS)
_f64_256, _f64_512 = (types.ExternalFunction(_name(8, bits), _SIG) for bits in WIDTHS)


@njit(cache=True)
def max_tile(lanes, stride, offsets, index_offsets, buf, origin, base, best, arg, out):
    """best[out:out + lanes], arg[out:out + lanes] = the maxima and their plane indices of `lanes`
    windows whose first elements are buf[origin + j * stride]; window element k at offsets[k] from
    there, with plane index base + j * stride + index_offsets[k]."""
    size = buf.itemsize
    args = (stride, offsets.shape[0], offsets.ctypes.data, index_offsets.ctypes.data,
            buf.ctypes.data + origin * size, base, best.ctypes.data + out * size, arg.ctypes.data + out * 8)
    wide = lanes * size == 64
    if size == 4:
        if wide:
            _f32_512(*args)
        else:
            _f32_256(*args)
    elif wide:
        _f64_512(*args)
    else:
        _f64_256(*args)


@njit(cache=True)
def _share(t, n_threads, x, sh, sw, ph, pw, top, mask, lanes, offsets, index_offsets, hp, wp):
    """The planes of share t. The buffer's border is filled once: each plane writes only its inside.
    Whole vectors of outputs are stored in place, a row's last partial one through a scratch."""
    planes, height, width = x.shape
    oh, ow = top.shape[1], top.shape[2]
    buf = np.full(hp * wp, -np.inf, x.dtype)
    best = np.empty(lanes, x.dtype)
    arg = np.empty(lanes, np.int64)
    flat_top, flat_mask = top.reshape(-1), mask.reshape(-1)
    rows, cols = min(height, hp - ph), min(width, wp - pw)
    for p in range(t, planes, n_threads):
        plane = x[p]
        for y in range(rows):
            row, dst = plane[y], buf[(y + ph) * wp + pw :]  # views: the copy vectorises
            for c in range(cols):
                dst[c] = row[c]
        for oy in range(oh):
            for ox0 in range(0, ow, lanes):
                base = (oy * sh - ph) * width + ox0 * sw - pw
                origin = oy * sh * wp + ox0 * sw
                out = (p * oh + oy) * ow + ox0
                if ox0 + lanes <= ow:
                    max_tile(lanes, sw, offsets, index_offsets, buf, origin, base, flat_top, flat_mask, out)
                else:
                    max_tile(lanes, sw, offsets, index_offsets, buf, origin, base, best, arg, 0)
                    for j in range(ow - ox0):
                        flat_top[out + j] = best[j]
                        flat_mask[out + j] = arg[j]


@njit(cache=True, parallel=True)
def _batch(n_threads, x, sh, sw, ph, pw, top, mask, lanes, offsets, index_offsets, hp, wp):
    for t in prange(n_threads):
        _share(t, n_threads, x, sh, sw, ph, pw, top, mask, lanes, offsets, index_offsets, hp, wp)


def max_forward(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, top: np.ndarray,
                mask: np.ndarray) -> None:
    """top, mask (planes, out_h, out_w) = MAX pooling of the C-contiguous planes x (planes, H, W), as
    engine.kernels.cpu.pooling.max_forward computes them; needs suits(sw, out_w, x.dtype)."""
    oh, ow = top.shape[1], top.shape[2]
    if x.shape[0] == 0 or oh * ow == 0:
        return
    lanes = direct_tile.lanes_for(ow, x.dtype)
    hp, wp = (oh - 1) * sh + kh, direct_tile.padded(ow, lanes) * sw + kw
    dh, dw = np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij")
    offsets = (dh * wp + dw).reshape(-1).astype(np.int64)
    index_offsets = (dh * x.shape[2] + dw).reshape(-1).astype(np.int64)
    _batch(thread_count(), x, sh, sw, ph, pw, top, mask, lanes, offsets, index_offsets, hp, wp)
