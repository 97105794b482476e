"""The register-tiled inner loop of the direct convolution, generated as LLVM IR and compiled for
this CPU by llvmlite, then bound by symbol so numba kernels call it (and stay cacheable on disk),
as engine.kernels.cpu.blas binds the BLAS.

Why not numba: numba has no SIMD vector type, and LLVM does not keep a tile of accumulators in
registers across a reduction loop written over arrays. Written here with explicit vectors, each
step of the loop is a handful of loads and a dozen or more FMAs on registers, like a GEMM
microkernel, but it reads its operand straight from the zero-bordered image instead of a column
matrix.

Vectors are 256 bits (AVX2), and also 512 bits where the CPU has AVX-512: twice the multiply-adds
per instruction, and 32 vector registers, so a tile holds up to six vectors per channel instead of
three. Which width a convolution uses depends on its row width (lanes_for).

One tile: TILE_CHANNELS output channels x `nv` (1..vectors_per_tile()) vectors of `lanes`
consecutive output positions. Its arguments:
    x      the zero-bordered source (flat), xoff[nv] each vector's first element in x,
    taps   (k,) each tap's offset in x (input channel, kernel row, kernel column, in Caffe's order),
    w      (k, TILE_CHANNELS) the tile's weights per tap (zero for missing channels),
    sums   (TILE_CHANNELS, MAX_VECTORS, lanes) scratch for what is not stored to dst,
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
#: the most vectors per channel a tile computes (32 vector registers: 24 sums, 6 inputs, 1 weight)
MAX_VECTORS = 6
#: vector widths the tiles are generated for, in bits
WIDTHS = (256, 512)
#: taps per weight-gradient tile, and its most vectors of output channels (24 sums in registers)
WEIGHT_TAPS = 8
MAX_WEIGHT_VECTORS = 3


def _kind(itemsize: int) -> str:
    return "f64" if itemsize == 8 else "f32"


def _name(itemsize: int, bits: int, nv: int | None = None) -> str:
    base = f"brewnet_direct_tile_{_kind(itemsize)}_{bits}"
    return base if nv is None else f"{base}_{nv}"


def _weight_name(itemsize: int, bits: int, mv: int | None = None) -> str:
    base = f"brewnet_weight_tile_{_kind(itemsize)}_{bits}"
    return base if mv is None else f"{base}_{mv}"


def _build_tile(module, itemsize: int, bits: int, nv: int):
    """The convolution tile for exactly nv vectors of `bits` each (see the module doc)."""
    from llvmlite import ir

    real = ir.DoubleType() if itemsize == 8 else ir.FloatType()
    lanes = bits // (8 * itemsize)
    vec = ir.VectorType(real, lanes)
    i32, i64 = ir.IntType(32), ir.IntType(64)
    fma_name = f"llvm.fma.v{lanes}{_kind(itemsize)}"
    fma = module.globals.get(fma_name) or ir.Function(module, ir.FunctionType(vec, [vec, vec, vec]), fma_name)
    ptr, iptr = real.as_pointer(), i64.as_pointer()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr, iptr, iptr, i64, ptr, ptr, iptr, ptr, i64,
                                                             i64, ptr, i64]), _name(itemsize, bits, nv))
    fn.linkage = "internal"
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
    return fn


def _build_weight_tile(module, itemsize: int, bits: int, mv: int):
    """The weight-gradient tile for exactly mv vectors of output channels (see weight_tile)."""
    from llvmlite import ir

    real = ir.DoubleType() if itemsize == 8 else ir.FloatType()
    lanes = bits // (8 * itemsize)
    vec = ir.VectorType(real, lanes)
    i32, i64 = ir.IntType(32), ir.IntType(64)
    fma_name = f"llvm.fma.v{lanes}{_kind(itemsize)}"
    fma = module.globals.get(fma_name) or ir.Function(module, ir.FunctionType(vec, [vec, vec, vec]), fma_name)
    ptr, iptr = real.as_pointer(), i64.as_pointer()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [i64, iptr, ptr, i64, ptr, iptr, ptr, i64]),
                     _weight_name(itemsize, bits, mv))
    fn.linkage = "internal"
    steps, pos, a, lda, x, taps, out, ldo = fn.args
    entry, loop, done = (fn.append_basic_block(n) for n in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    bases = [b.gep(x, [b.load(b.gep(taps, [ir.Constant(i64, t)]))]) for t in range(WEIGHT_TAPS)]
    zero = ir.Constant(vec, [0.0] * lanes)
    undef = ir.Constant(vec, ir.Undefined)
    splat = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
    b.branch(loop)

    b.position_at_end(loop)
    q = b.phi(i64)
    q.add_incoming(ir.Constant(i64, 0), entry)
    acc = [[b.phi(vec) for _ in range(mv)] for _ in range(WEIGHT_TAPS)]
    for row in acc:
        for value in row:
            value.add_incoming(zero, entry)
    off = b.load(b.gep(pos, [q]))
    a_row = b.gep(a, [b.mul(q, lda)])
    a_vecs = [b.load(b.bitcast(b.gep(a_row, [ir.Constant(i64, v * lanes)]), vec.as_pointer()), align=itemsize)
              for v in range(mv)]
    summed = []
    for t in range(WEIGHT_TAPS):
        scalar = b.load(b.gep(bases[t], [off]))
        xv = b.shuffle_vector(b.insert_element(undef, scalar, ir.Constant(i32, 0)), undef, splat)
        summed.append([b.call(fma, [a_vecs[v], xv, acc[t][v]]) for v in range(mv)])
    q_next = b.add(q, ir.Constant(i64, 1))
    q.add_incoming(q_next, loop)
    for t in range(WEIGHT_TAPS):
        for v in range(mv):
            acc[t][v].add_incoming(summed[t][v], loop)
    b.cbranch(b.icmp_signed("<", q_next, steps), loop, done)

    b.position_at_end(done)
    for t in range(WEIGHT_TAPS):
        row = b.gep(out, [b.mul(ir.Constant(i64, t), ldo)])
        for v in range(mv):
            slot = b.bitcast(b.gep(row, [ir.Constant(i64, v * lanes)]), vec.as_pointer())
            b.store(b.fadd(b.load(slot, align=itemsize), summed[t][v]), slot, align=itemsize)
    b.ret_void()
    return fn


def _build_dispatch(module, name: str, tiles) -> None:
    """An exported function whose first argument n calls tiles[n - 1] with the rest."""
    from llvmlite import ir

    i64 = ir.IntType(64)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [i64, *tiles[0].function_type.args]), name)
    count, *args = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    done = fn.append_basic_block("done")
    switch = b.switch(count, done)
    for n, tile_fn in enumerate(tiles, start=1):
        block = fn.append_basic_block(f"n{n}")
        switch.add_case(ir.Constant(i64, n), block)
        b.position_at_end(block)
        b.call(tile_fn, args)
        b.branch(done)
    b.position_at_end(done)
    b.ret_void()


def _host_features() -> str:
    import llvmlite.binding as llvm

    return llvm.get_host_cpu_features().flatten()


def _compile():
    """Build and JIT every tile; the execution engine (kept alive by the caller), or None."""
    try:
        import llvmlite.binding as llvm
        from llvmlite import ir

        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        module = ir.Module("brewnet_direct_tiles")
        module.triple = llvm.get_process_triple()
        for itemsize in (4, 8):
            for bits in WIDTHS:
                _build_dispatch(module, _name(itemsize, bits),
                                [_build_tile(module, itemsize, bits, nv) for nv in range(1, MAX_VECTORS + 1)])
                _build_dispatch(module, _weight_name(itemsize, bits),
                                [_build_weight_tile(module, itemsize, bits, mv)
                                 for mv in range(1, MAX_WEIGHT_VECTORS + 1)])
        # 512-bit vectors stay whole even where LLVM's tuning for the CPU prefers 256-bit ones
        text = str(module).replace(") {", ') "min-legal-vector-width"="512" {')
        parsed = llvm.parse_assembly(text)
        parsed.verify()
        machine = llvm.Target.from_triple(module.triple).create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=_host_features(), opt=3)
        engine = llvm.create_mcjit_compiler(parsed, machine)
        engine.finalize_object()
        for itemsize in (4, 8):
            for bits in WIDTHS:
                for name in (_name(itemsize, bits), _weight_name(itemsize, bits)):
                    llvm.add_symbol(name, engine.get_function_address(name))
        return engine
    except Exception:  # noqa: BLE001 - any failure means: use the im2col path instead
        return None


_ENGINE = _compile()
#: AVX-512: 512-bit vectors and 32 vector registers (else 256-bit vectors and 16 registers)
WIDE = _ENGINE is not None and "+avx512f" in _host_features().split(",")


def available() -> bool:
    """Whether the tiles compiled (else the convolutions keep to im2col + GEMM)."""
    return _ENGINE is not None


def vectors_per_tile() -> int:
    """How many vectors per channel a convolution tile may take here without spilling its sums."""
    return MAX_VECTORS if WIDE else 3


def weight_vectors_per_tile() -> int:
    """How many vectors of channels a weight-gradient tile may take here without spilling its sums
    (WEIGHT_TAPS sums per vector, plus the vectors and one broadcast value)."""
    return MAX_WEIGHT_VECTORS if WIDE else 1


def lanes_for(width: int, dtype) -> int:
    """Lanes per vector for output rows of `width`: 512-bit vectors where the CPU has them, unless a
    row then wastes so many lanes that two 256-bit vectors do as well (rows of 8 floats)."""
    itemsize = np.dtype(dtype).itemsize
    narrow = 32 // itemsize
    if not WIDE:
        return narrow
    wide = 2 * narrow
    per_row_wide, per_row_narrow = -(-width // wide) * wide, -(-width // narrow) * narrow
    return wide if per_row_wide < 1.5 * per_row_narrow else narrow


_SIG = types.void(types.int64, *[types.voidptr] * 3, types.int64, *[types.voidptr] * 4,
                  types.int64, types.int64, types.voidptr, types.int64)
_f32_256 = types.ExternalFunction(_name(4, 256), _SIG)
_f32_512 = types.ExternalFunction(_name(4, 512), _SIG)
_f64_256 = types.ExternalFunction(_name(8, 256), _SIG)
_f64_512 = types.ExternalFunction(_name(8, 512), _SIG)


@njit(cache=True)
def tile(lanes, nv, x, xoff, taps, w, w_off, sums, ooff, dst, ldo, nm, bias, b_off, use_bias):
    """One tile of nv vectors of `lanes` (see the module doc); w[w_off:] holds its (k,
    TILE_CHANNELS) weights, bias[b_off:] its TILE_CHANNELS biases (read even when use_bias is
    False). Arrays of one dtype; xoff, taps and ooff int64."""
    size = x.itemsize
    args = (nv, x.ctypes.data, xoff.ctypes.data, taps.ctypes.data, taps.shape[0],
            w.ctypes.data + w_off * size, sums.ctypes.data, ooff.ctypes.data, dst.ctypes.data, ldo, nm,
            bias.ctypes.data + b_off * size, 1 if use_bias else 0)
    wide = lanes * size == 64
    if size == 8:
        if wide:
            _f64_512(*args)
        else:
            _f64_256(*args)
    elif wide:
        _f32_512(*args)
    else:
        _f32_256(*args)


_WSIG = types.void(types.int64, types.int64, *[types.voidptr] * 2, types.int64, *[types.voidptr] * 3,
                   types.int64)
_w_f32_256 = types.ExternalFunction(_weight_name(4, 256), _WSIG)
_w_f32_512 = types.ExternalFunction(_weight_name(4, 512), _WSIG)
_w_f64_256 = types.ExternalFunction(_weight_name(8, 256), _WSIG)
_w_f64_512 = types.ExternalFunction(_weight_name(8, 512), _WSIG)


@njit(cache=True)
def weight_tile(lanes, mv, steps, pos, a, a_off, lda, x, taps, t_off, out, o_off, ldo):
    """out[o_off + t * ldo + j] += sum over q < steps of a[a_off + q * lda + j] * x[taps[t_off + t] + pos[q]]
    for the WEIGHT_TAPS taps t and the mv * lanes channels j: the weight gradient of WEIGHT_TAPS taps
    and mv vectors of output channels, summed over `steps` output positions (steps >= 1). The sums
    run in registers (one FMA chain per lane, positions in order) and are added to out once."""
    size = x.itemsize
    args = (mv, steps, pos.ctypes.data, a.ctypes.data + a_off * size, lda, x.ctypes.data,
            taps.ctypes.data + t_off * 8, out.ctypes.data + o_off * size, ldo)
    wide = lanes * size == 64
    if size == 8:
        if wide:
            _w_f64_512(*args)
        else:
            _w_f64_256(*args)
    elif wide:
        _w_f32_512(*args)
    else:
        _w_f32_256(*args)


def scratch(dtype) -> np.ndarray:
    """A tile's output scratch for dtype, for any of its widths."""
    return np.empty(TILE_CHANNELS * MAX_VECTORS * 64 // np.dtype(dtype).itemsize, dtype)
