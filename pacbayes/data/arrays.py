"""Plain numpy array files (.npy / .npz) for the pieces that take arrays: kernels, labels, inputs.

Read without unpickling; every array is checked for container, dtype, emptiness and finiteness, and
a bad file is one InputError naming the file, what was expected and the fix.
"""

import zipfile
import zlib

import numpy as np

from pacbayes.arguments import regular_file
from pacbayes.errors import InputError
from pacbayes.report import write_atomically

_DTYPE_KINDS = {"b": "boolean", "i": "integer", "u": "unsigned integer", "f": "float"}


def save_npy(path: str, array) -> None:
    """Write ``array`` as .npy to exactly ``path`` (numpy.save(path) would append .npy), atomically;
    InputError naming the path if it cannot be written."""
    try:
        write_atomically(path, lambda stream: np.save(stream, array), binary=True)
    except OSError as err:
        raise InputError(f"cannot write {path!r} ({err}); choose a writable path") from err


def load_npy(
    path: str,
    what: str,
    fix: str = "save it with numpy.save",
    *,
    kinds: str = "biuf",
    archive: bool = False,
    square: bool = False,
):
    """np.load without pickles, then :func:`checked_array`; an unreadable file is one clear line
    naming ``what`` and the fix. With ``archive`` a .npz comes back as the (unchecked) NpzFile;
    with ``square`` the array must be an m x m matrix. Only a regular file is opened (a FIFO or a device
    would block the read or never end it)."""
    regular_file(path, f"the {what} file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise InputError(f"cannot read the {what} file {path!r} as a numpy array ({err}); {fix}") from err
    if archive and isinstance(loaded, np.lib.npyio.NpzFile):
        return loaded
    array = checked_array(loaded, path, what, fix, kinds)
    if square and (array.ndim != 2 or array.shape[0] != array.shape[1]):
        raise InputError(f"the {what} in {path!r} has shape {array.shape}; it must be a square m x m matrix; {fix}")
    return array


def checked_array(array, path: str, what: str, fix: str, kinds: str = "biuf"):
    """``array`` if it is one numpy array of a dtype kind in ``kinds``, non-empty and finite."""
    if isinstance(array, np.lib.npyio.NpzFile):
        array.close()
        raise InputError(f"the {what} file {path!r} is a .npz archive; {fix} (one array in a .npy file)")
    if not isinstance(array, np.ndarray):
        raise InputError(f"the {what} file {path!r} does not hold a numpy array; {fix}")
    if array.dtype.kind not in kinds:
        allowed = ", ".join(_DTYPE_KINDS[k] for k in kinds)
        raise InputError(f"the {what} in {path!r} have dtype {array.dtype}; they must be numbers ({allowed}); {fix}")
    if array.size == 0:
        raise InputError(f"the {what} in {path!r} are empty (shape {array.shape}); {fix}")
    if not bool(np.isfinite(array).all()):
        raise InputError(f"the {what} in {path!r} contain NaN or infinite values; clean them first")
    return array


def load_kernel_inputs(path: str):
    """An (n, ...) input array from a .npy file, or from a .npz holding one array (or one named x)."""
    fix = "save an (n, d) or (n, c, h, w) array with numpy.save or numpy.savez"
    loaded = load_npy(path, "inputs", fix, archive=True)
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.keys())
            if len(keys) != 1 and "x" not in keys:
                raise InputError(f"{path} holds arrays {keys}; store the inputs alone or under the name x")
            try:
                loaded = loaded["x" if "x" in keys else keys[0]]
            except (OSError, ValueError, EOFError, zlib.error) as err:
                raise InputError(f"cannot read the inputs in {path!r} ({err}); {fix}") from None
        loaded = checked_array(loaded, path, "inputs", fix)
    if loaded.ndim < 2:
        raise InputError(f"the inputs in {path!r} have shape {loaded.shape}; {fix} (one row per input)")
    return loaded
