"""coursekit: the shared code of the Deep Generative Models course.

Import modules, not names, so a reader sees where each function lives::

    from coursekit import data, plot, train, utils
"""

__version__ = "0.1.0"

# The one place the repository's address lives: the Colab badge and set-up cell
# of every notebook are generated from it (tools/build_notebooks.py).
REPOSITORY = "https://github.com/dgm-course/deep-generative-models"

# Imported first so that, in a notebook, an expected error (errors.CourseError) shows as its
# message alone, without a traceback through coursekit (see coursekit/errors.py).
from coursekit import errors  # noqa: E402, F401
