"""The public API: every exported name resolves; plain-data modules import without aihwkit."""

import subprocess
import sys

import analog_snu


def test_every_public_name_resolves():
    for name in analog_snu.__all__:
        assert getattr(analog_snu, name) is not None, name


def test_pcm_data_and_functional_import_without_aihwkit():
    # sys.modules[...] = None makes any `import aihwkit` raise ImportError in the child.
    code = (
        "import sys; sys.modules['aihwkit'] = None\n"
        "import analog_snu, analog_snu.pcm, analog_snu.pcm.chip, analog_snu.data, analog_snu.functional\n"
        "from analog_snu.pcm import preset\n"
        "assert preset('ideal').to_dict()\n"
        "assert 'aihwkit' not in {m.split('.')[0] for m in sys.modules if sys.modules[m] is not None}\n"
        "try:\n"
        "    analog_snu.SNU\n"
        "except ImportError as exc:\n"
        "    print('BLOCKED', type(exc).__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # Without aihwkit the layer names fail with our BackendError (an ImportError) naming versions.
    assert "BLOCKED BackendError" in result.stdout
