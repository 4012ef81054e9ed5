//! The per-channel view of a tensor (spec §3.2 step 1) and coremltools' shape validation.

use super::KernelError;

/// How flat storage-order positions map to quantization channels.
///
/// The channel of position `i` is `(i / inner) % channels`: axis 0 gives contiguous blocks,
/// axis 1 of a rank-4 `[A, B, H, W]` tensor gives `B` channels of `A` blocks of `H·W` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelView {
    /// Number of weights.
    pub len: usize,
    /// Number of channels (1 for one-dimensional tensors and for LUT modes).
    pub channels: usize,
    /// Length of a run of consecutive positions in the same channel (at least 1).
    pub inner: usize,
}

impl ChannelView {
    /// Validates `shape`/`axis` for `len` weights in coremltools' order and builds the view.
    ///
    /// `linear` selects the channel count used by the divisibility check: `shape[axis]` for
    /// the linear modes, 1 for the lookup-table modes (which then use one channel).
    pub fn new(len: usize, shape: &[u64], axis: usize, linear: bool) -> Result<Self, KernelError> {
        let one;
        let shape = if shape.is_empty() {
            one = [len as u64];
            &one[..]
        } else {
            shape
        };
        if axis == 1 && shape.len() != 4 {
            return Err(KernelError::AxisRank);
        }
        if axis > 1 {
            return Err(KernelError::InvalidAxis(axis));
        }
        let axis_dim = shape.get(axis).copied().unwrap_or(1);
        let check = if linear { axis_dim } else { 1 };
        if check == 0 {
            return Err(KernelError::ZeroChannels);
        }
        if (len as u64) % check != 0 {
            return Err(KernelError::ChannelsNotDivisible {
                weights: len,
                channels: check,
            });
        }
        let product = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        if product != Some(len as u64) {
            return Err(KernelError::Reshape {
                size: len,
                shape: numpy_shape(shape),
            });
        }
        if !linear || shape.len() == 1 {
            return Ok(ChannelView {
                len,
                channels: 1,
                inner: len.max(1),
            });
        }
        // Every dimension divides `len` here, so these casts cannot truncate.
        let channels = axis_dim as usize;
        let inner = if axis == 1 {
            shape.iter().skip(2).product::<u64>() as usize
        } else {
            len / channels.max(1)
        };
        Ok(ChannelView {
            len,
            channels: channels.max(1),
            inner: inner.max(1),
        })
    }

    /// A view with one channel over `len` weights.
    pub fn single(len: usize) -> Self {
        ChannelView {
            len,
            channels: 1,
            inner: len.max(1),
        }
    }

    /// The channel of position `i`.
    #[inline]
    pub fn channel(&self, i: usize) -> usize {
        (i / self.inner) % self.channels
    }

    /// Calls `f(channel, range)` for every maximal run of same-channel positions in `range`.
    #[inline]
    pub fn for_runs(
        &self,
        range: std::ops::Range<usize>,
        mut f: impl FnMut(usize, std::ops::Range<usize>),
    ) {
        let mut pos = range.start;
        while pos < range.end {
            let seg = pos / self.inner;
            let end = ((seg + 1) * self.inner).min(range.end);
            f(seg % self.channels, pos..end);
            pos = end;
        }
    }
}

/// Formats a shape the way numpy prints it in reshape errors: `(2,3)`, `(1,)`.
pub(crate) fn numpy_shape(shape: &[u64]) -> String {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    if dims.len() == 1 {
        format!("({},)", dims.join(""))
    } else {
        format!("({})", dims.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_one_swaps_first_two_axes() {
        let v = ChannelView::new(2 * 3 * 2 * 2, &[2, 3, 2, 2], 1, true).unwrap();
        assert_eq!((v.channels, v.inner), (3, 4));
        let chans: Vec<usize> = (0..24).map(|i| v.channel(i)).collect();
        assert_eq!(chans[..12], [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
        assert_eq!(chans[12..], chans[..12]);
    }

    #[test]
    fn one_dimensional_is_one_channel() {
        let v = ChannelView::new(5, &[5], 0, true).unwrap();
        assert_eq!(v.channels, 1);
    }

    #[test]
    fn errors_in_coremltools_order() {
        let e = ChannelView::new(7, &[2, 4], 0, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Number of quantization channels does not divide evenly into weights"
        );
        let e = ChannelView::new(6, &[2, 4], 0, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot reshape array of size 6 into shape (2,4)"
        );
        let e = ChannelView::new(3, &[1], 0, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot reshape array of size 3 into shape (1,)"
        );
        let e = ChannelView::new(8, &[2, 4], 1, true).unwrap_err();
        assert_eq!(e, KernelError::AxisRank);
        let e = ChannelView::new(8, &[0, 4], 0, true).unwrap_err();
        assert_eq!(e.to_string(), "integer modulo by zero");
    }
}
