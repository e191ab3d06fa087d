"""Argument checks shared by the public API (private).

Everything here runs before any kernel: Numba does not bounds-check, so an id that is not
checked here is memory corruption there. Errors name the argument and the offending value.
"""
import math
import numbers

import numpy as np

from ._validate_kernels import first_nonfinite, min_max

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_int(value, name, minimum=None):
    """``value`` as a Python int (bools and floats rejected), optionally ``>= minimum``."""
    if type(value) is not int:                 # (plain ints skip the slower ABC checks)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
        value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def as_bool(value, name):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")


def as_id_array(value, name):
    """An integer array (int32/int64 accepted, returned as int64). Floats and bools rejected."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":             # (np.issubdtype is slow for a per-call check)
        if arr.size == 0 and arr.dtype == np.float64 and not isinstance(value, np.ndarray):
            arr = arr.astype(np.int64)  # an empty Python list
        else:
            raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.dtype != np.int64:
        if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name} holds values beyond int64")
        arr = arr.astype(np.int64)
    return np.ascontiguousarray(arr)


def check_range(ids, low, high, name, what=None):
    """Raise unless every id satisfies ``low <= id < high``."""
    if ids.size == 0:
        return
    if ids.dtype == np.int64 and ids.flags.c_contiguous:
        lo, hi = min_max(ids.reshape(-1))
    else:
        lo, hi = ids.min(), ids.max()
    if lo < low or hi >= high:
        bad = lo if lo < low else hi
        where = tuple(int(i) for i in np.argwhere(ids == bad)[0])
        raise ValueError(
            f"{name} must lie in [{low}, {high}){' (' + what + ')' if what else ''}; "
            f"found {int(bad)} at index {where if len(where) > 1 else where[0]}"
        )


def as_float_array(value, name, ndim=None):
    """A float32/float64 array (other dtypes rejected, not silently cast)."""
    arr = np.asarray(value)
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    return arr


def check_finite(arr, name):
    """Raise unless every entry of the float array ``arr`` is finite (naming the first bad one)."""
    if arr.dtype in FLOAT_DTYPES and arr.flags.c_contiguous and arr.size:
        first = first_nonfinite(arr.reshape(-1))
        if first < 0:
            return
        idx = np.unravel_index(first, arr.shape)
    elif np.isfinite(arr).all():
        return
    else:
        idx = np.argwhere(~np.isfinite(arr))[0]
    idx = tuple(int(i) for i in idx)
    raise ValueError(f"{name} must be finite; found {arr[idx]} at index {idx}")


INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def as_int_at_most(value, name, minimum, maximum, why=None):
    """``value`` as a Python int in ``[minimum, maximum]`` (bools and floats rejected).

    Parameters
    ----------
    value : int
        The argument (Python or numpy integer).
    name : str
        Argument name for the error message.
    minimum, maximum : int
        Inclusive bounds.
    why : str, optional
        Reason for ``maximum``, appended to the error message.

    Returns
    -------
    int

    Raises
    ------
    TypeError
        If ``value`` is not an integer (bools included).
    ValueError
        If ``value`` is outside ``[minimum, maximum]``.
    """
    value = as_int(value, name, minimum)
    if value > maximum:
        raise ValueError(f"{name} must be <= {maximum}{' (' + why + ')' if why else ''}, "
                         f"got {value}")
    return value


def as_real(value, name, minimum=None):
    """``value`` as a finite Python float, at least ``minimum`` (bools refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


INT32_WHY = "TensorFlow holds it in an int32"


def as_true_classes(true_classes, num_true, range_max=None, name="true_classes",
                     max_num_true=INT32_MAX):
    """(B, num_true) int64 array; 1-D of length B accepted when num_true == 1."""
    num_true = as_int_at_most(num_true, "num_true", 1, max_num_true,
                              INT32_WHY if max_num_true == INT32_MAX else None)
    tc = as_id_array(true_classes, name)
    if tc.ndim == 1 and num_true == 1:
        tc = tc.reshape(-1, 1)
    if tc.ndim != 2:
        raise ValueError(f"{name} must be 2-D (batch, num_true), got shape {tc.shape}")
    if tc.shape[1] != num_true:
        raise ValueError(f"{name} has {tc.shape[1]} columns but num_true is {num_true}")
    if range_max is not None:
        check_range(tc, 0, range_max, name, f"range_max is {range_max}")
    return tc, num_true
