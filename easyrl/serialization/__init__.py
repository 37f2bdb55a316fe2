"""The easyrl file format: zips that can be shared with strangers, because reading one runs no code from it.

Two kinds of file share one safe reader (``zipsafe``) and one ``metadata.json`` (``metadata``):

- a model file (``model_zip``): metadata, one ``<name>.pt`` per state dict read with
  ``torch.load(weights_only=True)``, and ``pickled/<name>.pkl`` members only for values JSON cannot
  hold, never unpickled unless trusted by name;
- an arrays file (``arrays``): metadata and plain ``.npy`` arrays, for replay buffers.

``spaces`` and ``params`` turn gymnasium spaces and constructor parameters into JSON and back. This
package knows no model class: what goes into a model's files is decided in ``easyrl.algorithms``
(``model_file``, ``replay_file``), through the functions below. Every problem with a file is raised
as :class:`ModelFileError` (a ValueError) naming the file.
"""

from easyrl.serialization.arrays import (
    ArraysReader,
    NpyHeader,
    open_arrays_zip,
    read_arrays_zip,
    write_arrays_zip,
)
from easyrl.serialization.metadata import FORMAT_VERSION, read_metadata, versions
from easyrl.serialization.model_zip import (
    LoadedZip,
    pickled_member,
    read_model_zip,
    untrusted_pickle_error,
    write_model_zip,
)
from easyrl.serialization.params import ACTIVATION_KEY, decode_params, encode_params, pickled_names
from easyrl.serialization.spaces import space_from_json, space_to_json
from easyrl.serialization.zipsafe import DEFAULT_LIMITS, ModelFileError, PathOrFile, ZipLimits

__all__ = [
    "ACTIVATION_KEY",
    "DEFAULT_LIMITS",
    "FORMAT_VERSION",
    "ArraysReader",
    "LoadedZip",
    "ModelFileError",
    "NpyHeader",
    "PathOrFile",
    "ZipLimits",
    "decode_params",
    "encode_params",
    "open_arrays_zip",
    "pickled_member",
    "pickled_names",
    "read_arrays_zip",
    "read_metadata",
    "read_model_zip",
    "space_from_json",
    "space_to_json",
    "untrusted_pickle_error",
    "versions",
    "write_arrays_zip",
    "write_model_zip",
]
