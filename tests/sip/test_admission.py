"""SetupAdmission: new call setups are refused while too many are pending or the media clock lags."""

import pytest

from voicebot.sip.admission import SetupAdmission


def test_refuses_at_the_pending_bound_and_above_the_media_lag() -> None:
    admission = SetupAdmission(max_pending_setups=3, max_media_lag_s=0.03)
    assert admission.refusal(2, 0.029) is None
    assert admission.refusal(3, 0.0) == "overloaded: 3 call setups pending"
    assert admission.refusal(0, 0.045) == "overloaded: media clock 45 ms late"


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="max_pending_setups"):
        SetupAdmission(max_pending_setups=0)
