"""The register-tiled inner loop of the direct convolution, generated as LLVM IR and compiled for
this CPU by llvmlite, then bound by symbol so numba kernels call it (and stay cacheable on disk),
as engine.kernels.cpu.blas binds the BLAS.

Why not numba: numba has no SIMD vector type, and LLVM does not keep a tile of accumulators in
registers across a reduction loop written over arrays. Written here with explicit vectors, each
step of the loop is a handful of loads and a dozen FMAs on registers, like a GEMM microkernel,
but it reads its operand straight from the zero-bordered image instead of a column matrix.

One tile: TILE_CHANNELS output channels x `nv` (1..MAX_VECTORS) vectors of LANES consecutive
output positions. Its arguments:
    x      the zero-bordered source (flat), xoff[nv] each vector's first element in x,
    taps   (k,) each tap's offset in x (input channel, kernel row, kernel column, in Caffe's order),
    w      (k, TILE_CHANNELS) the tile's weights per tap (zero for missing channels),
    sums   (TILE_CHANNELS, MAX_VECTORS, LANES) scratch for what is not stored to dst,
    ooff   [nv] each vector's first element in dst, or -1 for a vector that is partly outside the
           row (its sums go to the scratch, and the caller stores the lanes that are outputs),
    dst    the output (flat), ldo its stride between channels, nm how many of the tile's channels
           exist (the rest go to the scratch),
    bias   the tile's TILE_CHANNELS biases, added (after the sum is rounded, as Caffe) if use_bias.
Each output is one FMA chain over the taps in order.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types

TILE_CHANNELS = 4
MAX_VECTORS = 3
#: output positions per vector, by bytes per element: 256-bit vectors (AVX2); LLVM splits them
#: into narrower registers on CPUs without
LANES = {4: 8, 8: 4}


def _name(itemsize: int, nv: int) -> str:
    return f"brewnet_direct_tile_{'f64' if itemsize == 8 else 'f32'}_{nv}"


def _build_tile(module, itemsize: int, nv: int) -> None:
    from llvmlite import ir

    real = ir.DoubleType() if itemsize == 8 else ir.FloatType()
    lanes = LANES[itemsize]
    vec = ir.VectorType(real, lanes)
    i32, i64 = ir.IntType(32), ir.IntType(64)
    fma_name = f"llvm.fma.v{lanes}{'f64' if itemsize == 8 else 'f32'}"
    fma = module.globals.get(fma_name) or ir.Function(module, ir.FunctionType(vec, [vec, vec, vec]), fma_name)
    ptr, iptr = real.as_pointer(), i64.as_pointer()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr, iptr, iptr, i64, ptr, ptr, iptr, ptr, i64,
                                                             i64, ptr, i64]), _name(itemsize, nv))
    x, xoff, taps, k_count, w, sums, ooff, dst, ldo, nm, bias, use_bias = fn.args
    entry, loop, done = (fn.append_basic_block(n) for n in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    bases = [b.gep(x, [b.load(b.gep(xoff, [ir.Constant(i64, v)]))]) for v in range(nv)]
    zero = ir.Constant(vec, [0.0] * lanes)
    undef = ir.Constant(vec, ir.Undefined)
    splat = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
    b.branch(loop)

    b.position_at_end(loop)
    k = b.phi(i64)
    k.add_incoming(ir.Constant(i64, 0), entry)
    acc = [[b.phi(vec) for _ in range(nv)] for _ in range(TILE_CHANNELS)]
    for row in acc:
        for a in row:
            a.add_incoming(zero, entry)
    tap = b.load(b.gep(taps, [k]))
    xs = [b.load(b.bitcast(b.gep(base, [tap]), vec.as_pointer()), align=itemsize) for base in bases]
    w_row = b.gep(w, [b.mul(k, ir.Constant(i64, TILE_CHANNELS))])
    summed = []
    for i in range(TILE_CHANNELS):
        scalar = b.load(b.gep(w_row, [ir.Constant(i64, i)]))
        wv = b.shuffle_vector(b.insert_element(undef, scalar, ir.Constant(i32, 0)), undef, splat)
        summed.append([b.call(fma, [xs[v], wv, acc[i][v]]) for v in range(nv)])
    k_next = b.add(k, ir.Constant(i64, 1))
    k.add_incoming(k_next, loop)
    for i in range(TILE_CHANNELS):
        for v in range(nv):
            acc[i][v].add_incoming(summed[i][v], loop)
    b.cbranch(b.icmp_signed("<", k_next, k_count), loop, done)

    b.position_at_end(done)
    with_bias = b.icmp_signed("!=", use_bias, ir.Constant(i64, 0))
    offsets = [b.load(b.gep(ooff, [ir.Constant(i64, v)])) for v in range(nv)]
    for i in range(TILE_CHANNELS):
        scalar = b.load(b.gep(bias, [ir.Constant(i64, i)]))
        bv = b.shuffle_vector(b.insert_element(undef, scalar, ir.Constant(i32, 0)), undef, splat)
        exists = b.icmp_signed("<", ir.Constant(i64, i), nm)
        for v in range(nv):
            value = b.select(with_bias, b.fadd(summed[i][v], bv), summed[i][v])
            slot = b.gep(sums, [ir.Constant(i64, (i * MAX_VECTORS + v) * lanes)])
            out = b.gep(dst, [b.add(offsets[v], b.mul(ir.Constant(i64, i), ldo))])
            to_dst = b.and_(exists, b.icmp_signed(">=", offsets[v], ir.Constant(i64, 0)))
            b.store(value, b.bitcast(b.select(to_dst, out, slot), vec.as_pointer()), align=itemsize)
    b.ret_void()


def _compile():
    """Build and JIT every tile; the execution engine (kept alive by the caller), or None."""
    try:
        import llvmlite.binding as llvm
        from llvmlite import ir

        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        module = ir.Module("brewnet_direct_tiles")
        module.triple = llvm.get_process_triple()
        for itemsize in LANES:
            for nv in range(1, MAX_VECTORS + 1):
                _build_tile(module, itemsize, nv)
        parsed = llvm.parse_assembly(str(module))
        parsed.verify()
        machine = llvm.Target.from_triple(module.triple).create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3)
        engine = llvm.create_mcjit_compiler(parsed, machine)
        engine.finalize_object()
        for itemsize in LANES:
            for nv in range(1, MAX_VECTORS + 1):
                llvm.add_symbol(_name(itemsize, nv), engine.get_function_address(_name(itemsize, nv)))
        return engine
    except Exception:  # noqa: BLE001 - any failure means: use the im2col path instead
        return None


_ENGINE = _compile()


def available() -> bool:
    """Whether the tiles compiled (else the convolutions keep to im2col + GEMM)."""
    return _ENGINE is not None


_P, _I = types.voidptr, types.int64
_SIG = types.void(_P, _P, _P, _I, _P, _P, _P, _P, _I, _I, _P, _I)
_f32 = [types.ExternalFunction(_name(4, nv), _SIG) for nv in range(1, MAX_VECTORS + 1)]
_f64 = [types.ExternalFunction(_name(8, nv), _SIG) for nv in range(1, MAX_VECTORS + 1)]
_f32_1, _f32_2, _f32_3 = _f32
_f64_1, _f64_2, _f64_3 = _f64


@njit(cache=True)
def tile(nv, x, xoff, taps, w, w_off, sums, ooff, dst, ldo, nm, bias, b_off, use_bias):
    """One tile of nv vectors (see the module doc); w[w_off:] holds its (k, TILE_CHANNELS)
    weights, bias[b_off:] its TILE_CHANNELS biases (read even when use_bias is False). Arrays of
    one dtype; xoff, taps and ooff int64."""
    k = taps.shape[0]
    size = x.itemsize
    args = (x.ctypes.data, xoff.ctypes.data, taps.ctypes.data, k, w.ctypes.data + w_off * size,
            sums.ctypes.data, ooff.ctypes.data, dst.ctypes.data, ldo, nm, bias.ctypes.data + b_off * size,
            1 if use_bias else 0)
    if size == 8:
        if nv == 3:
            _f64_3(*args)
        elif nv == 2:
            _f64_2(*args)
        else:
            _f64_1(*args)
    elif nv == 3:
        _f32_3(*args)
    elif nv == 2:
        _f32_2(*args)
    else:
        _f32_1(*args)


def scratch(dtype) -> np.ndarray:
    """A tile's output scratch for dtype."""
    return np.empty(TILE_CHANNELS * MAX_VECTORS * LANES[np.dtype(dtype).itemsize], dtype)
