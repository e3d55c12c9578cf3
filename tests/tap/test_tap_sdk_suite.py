"""The SDK's standard tap tests, over the bundled sample drop and over moto S3."""

from singer_sdk.testing import get_tap_test_class

from tap_mparticle.tap import TapMParticle
from tests.s3support import REPO_ROOT

TestTapMParticleLocal = get_tap_test_class(
    TapMParticle,
    config={"bucket_url": str(REPO_ROOT / "samples" / "drop")},
)
