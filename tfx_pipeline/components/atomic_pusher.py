"""AtomicPusher: TFX's filesystem Pusher, except a version appears in the serving directory whole.

TFX's Pusher copies the SavedModel straight into `<base>/<version>/` (saved_model.pb last), so a
run killed mid-copy leaves a numbered, partial version behind (tensorflow/serving#631, #1086) that
TF Serving tries to load. This component copies into a hidden sibling `<base>/.tmp-<version>-<pid>/`
first, then renames it to `<base>/<version>` with one `os.rename`: on a local filesystem the
version directory either does not exist or is complete. TF Serving and serving/ only treat
all-digit names as versions, so the temporary directory is never loaded. Leftover temporary
directories (a run killed during the copy) are removed at the start of the next push; one run per
home at a time (tfx_pipeline.local_runner.home_lock) makes that safe.

Output and semantics match TFX's Pusher, so lineage, run summaries and LatestBlessedModelStrategy
work unchanged: a `PushedModel` artifact with custom properties `pushed` (1/0),
`pushed_destination` and `pushed_version` (a string); an unblessed model is not pushed
(`pushed` = 0). Versions are Unix seconds, as TFX's UNIX_TIMESTAMP versioning, but never lower
than the newest version already there + 1, so two pushes in one second cannot collide.
Unlike TFX's Pusher it does not archive a second copy of the model under the artifact's URI.

On a remote filesystem (gs://, s3://...) there is no atomic directory rename; there it copies
like TFX's Pusher does (saved_model.pb last, the file TF Serving waits for).

The filesystem work is tfx_pipeline/push.py (with its test hook that pauses before the rename).
"""

import os
import time

from absl import logging
from tfx.components.util import model_utils
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import Model, ModelBlessing, PushedModel
from tfx.utils import io_utils, path_utils

from tfx_pipeline.push import next_version, push_atomically


def push_by_copy(model_dir: str, base_directory: str, version: int) -> str:
    """TFX Pusher's copy for filesystems without atomic rename: saved_model.pb last."""
    final = os.path.join(base_directory, str(version))
    io_utils.copy_dir(model_dir, final, deny_regex_patterns=[r"saved_model\.pb"])
    saved_model = os.path.join(model_dir, "saved_model.pb")
    if io_utils.fileio.exists(saved_model):
        io_utils.copy_file(saved_model, os.path.join(final, "saved_model.pb"))
    return final


@component
def AtomicPusher(  # noqa: N802 (TFX component names are classes)
    model: InputArtifact[Model],
    model_blessing: InputArtifact[ModelBlessing],
    pushed_model: OutputArtifact[PushedModel],
    base_directory: Parameter[str],
) -> None:
    if not model_utils.is_model_blessed(model_blessing):
        logging.info("model %s was not blessed; nothing pushed", model.uri)
        pushed_model.set_int_custom_property("pushed", 0)
        return
    model_dir = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
    if "://" in base_directory:
        version = int(time.time())
        destination = push_by_copy(model_dir, base_directory, version)
    else:
        version = next_version(base_directory, time.time())
        destination = push_atomically(model_dir, base_directory, version,
                                      marker={"model_id": model.id, "model_uri": model.uri})
    logging.info("model %s pushed to %s", model.uri, destination)
    pushed_model.set_int_custom_property("pushed", 1)
    pushed_model.set_string_custom_property("pushed_destination", destination)
    pushed_model.set_string_custom_property("pushed_version", str(version))
