//! What one reading was found to be: whether it could be judged, its stage and the check that
//! gave it, its expectation.

use serde::{Deserialize, Serialize};

use crate::{AlarmKind, Direction};

/// Whether a reading could be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Judged; the stage says how unusual it is.
    Judged,
    /// Not newer than the series' last reading (out of order, or the clock went back): stored
    /// by the caller, but not judged, and no state changed.
    Late,
    /// Not a finite number: not judged, no state changed.
    Invalid,
}

/// What one reading was found to be.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// Whether it was judged.
    pub verdict: Verdict,
    /// The highest stage any check gave it (0: normal, or not judged).
    pub stage: u8,
    /// The check that gave that stage (`None` when normal).
    pub kind: Option<AlarmKind>,
    /// Which way it is abnormal (for outliers, also when normal: which side of expected).
    pub direction: Option<Direction>,
    /// Its percentile under the criteria (`None` before criteria exist).
    pub percentile: Option<f64>,
    /// The value expected at its hour of the week.
    pub expected: Option<f64>,
}

impl Judgement {
    pub(crate) fn unjudged(verdict: Verdict) -> Judgement {
        Judgement {
            verdict,
            stage: 0,
            kind: None,
            direction: None,
            percentile: None,
            expected: None,
        }
    }
}
