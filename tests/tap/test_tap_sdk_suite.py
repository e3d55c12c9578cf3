"""The SDK's standard tap tests, over the bundled sample drop."""

from __future__ import annotations

from singer_sdk.testing import get_tap_test_class

from tap_mparticle.tap import TapMParticle
from tests.support.files import REPO_ROOT


class TapEveryStreamSelected(TapMParticle):
    """The tap as a user who selects every stream sees it.

    The SDK's suite checks records against the catalog's selected properties; a stream
    that is not selected by default (`batches`) would be checked against an empty
    selection, so here every stream starts selected.
    """

    def discover_streams(self):
        streams = super().discover_streams()
        for stream in streams:
            stream.selected_by_default = True
        return streams


TestTapMParticleLocal = get_tap_test_class(
    TapEveryStreamSelected,
    config={"bucket_url": str(REPO_ROOT / "samples" / "drop")},
)
