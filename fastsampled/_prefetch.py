"""Software prefetch of matrix rows from Numba kernels (private).

The word-vector kernels read rows at random from matrices far larger than the caches: the
n-gram rows of the word that enters the window, the output rows of the negatives. A load
that misses stalls the kernel for the memory's latency, and the loads of one row come one
after another. :func:`prefetch_row` asks for every cache line of a row ahead of its use
(LLVM's ``llvm.prefetch``: a hint, which never faults, so a row index need not be checked
here; the kernels only pass rows they are about to read).
"""
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jitcache import guard_caches

_LINE = 64


@intrinsic
def _prefetch_at(typingctx, arr, row, offset):
    """Prefetch (for reading and writing, kept in all cache levels) the byte ``offset`` of
    row ``row`` of the C-contiguous 2-D array ``arr`` (of element ``row`` of a 1-D one)."""
    if not (isinstance(arr, types.Array) and arr.ndim in (1, 2)
            and isinstance(row, types.Integer) and isinstance(offset, types.Integer)):
        return None
    sig = types.void(arr, row, offset)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, value=args[0])
        i = context.cast(builder, args[1], signature.args[1], types.intp)
        off = context.cast(builder, args[2], signature.args[2], types.intp)
        zero = context.get_constant(types.intp, 0)
        index = [i] + [zero] * (aryty.ndim - 1)     # the row's first element
        elem = cgutils.get_item_pointer(context, builder, aryty, ary, index)
        i8p = ir.IntType(8).as_pointer()
        ptr = builder.gep(builder.bitcast(elem, i8p), [off])
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty)
        # rw = 1 (the row will be written), locality = 3 (keep), cache type = 1 (data)
        builder.call(fn, [ptr, ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, inline="always")
def prefetch_row(arr, i):
    """Hint that row ``i`` of the C-contiguous 2-D array ``arr`` is about to be used."""
    nbytes = arr.shape[1] * arr.itemsize
    for off in range(0, nbytes, _LINE):
        _prefetch_at(arr, i, off)
    _prefetch_at(arr, i, nbytes - 1)


@njit(cache=True, inline="always")
def prefetch_span(arr, a, b):
    """Hint that the elements ``a .. b-1`` of the C-contiguous 1-D array ``arr`` are about to
    be used."""
    if b <= a:
        return
    nbytes = (b - a) * arr.itemsize
    for off in range(0, nbytes, _LINE):
        _prefetch_at(arr, a, off)
    _prefetch_at(arr, a, nbytes - 1)


guard_caches(globals())     # cache saves take a lock: _jitcache.py
