//! A growing series of values with the summaries a chart needs to draw it at the cost of the
//! screen's width, not of the run's length.
//!
//! A [`Column`] keeps its values and, per block of [`BLOCK`] values, their smallest and
//! largest finite value and their smallest positive one (the log scale's floor), with coarser
//! levels above, each summarising pairs of the level below (a min/max pyramid). Any range is
//! then summarised exactly from O(log n) blocks plus at most two partial blocks read raw.
//!
//! A [`Values`] is the raw column and, when the charts smooth it, a second column holding the
//! debiased EMA of the plottable values for the smoothing on screen (its weight and scale),
//! computed once per value as the value arrives, and again only when the smoothing changes.
//!
//! Memory per value: 8 bytes raw and 3 for the pyramid (24 bytes a block, levels halving), the
//! same again for the smoothed column: 11 bytes a value, 22 smoothed, and 8 more for each NaN
//! or ±Inf. The raw values stay, so the summaries answer exactly what a scan of them would.

/// Values per block of the finest summary level.
pub const BLOCK: usize = 16;

/// Whether `y` can be drawn on the linear (any finite value) or the log scale (finite, > 0).
pub fn plottable(y: f64, log: bool) -> bool {
    y.is_finite() && (!log || y > 0.0)
}

/// What a chart needs to know of a run of values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Extent {
    /// Smallest and largest finite value (∞ and −∞ when there is none).
    pub min: f64,
    pub max: f64,
    /// Smallest finite value above zero (∞ when there is none).
    pub min_pos: f64,
}

impl Extent {
    pub const EMPTY: Extent = Extent {
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        min_pos: f64::INFINITY,
    };

    fn add(&mut self, y: f64) {
        if y.is_finite() {
            self.min = self.min.min(y);
            self.max = self.max.max(y);
            if y > 0.0 {
                self.min_pos = self.min_pos.min(y);
            }
        }
    }

    pub fn merge(&mut self, o: &Extent) {
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.min_pos = self.min_pos.min(o.min_pos);
    }

    /// (lowest, highest) plottable value on the axis scale (log10 for log), if any.
    pub fn on_scale(&self, log: bool) -> Option<(f64, f64)> {
        if log {
            // A positive value exists, so the largest finite one is positive too.
            self.min_pos
                .is_finite()
                .then(|| (self.min_pos.log10(), self.max.log10()))
        } else {
            (self.min <= self.max).then_some((self.min, self.max))
        }
    }
}

/// Values with their summaries: `levels[0][b]` covers block `b`, `levels[k][b]` blocks
/// `b·2^k .. (b+1)·2^k`; only whole blocks are summarised.
#[derive(Clone, Debug, Default)]
pub struct Column {
    ys: Vec<f64>,
    levels: Vec<Vec<Extent>>,
    /// Indices of the values that are NaN or ±Inf, in order.
    bad: Vec<usize>,
}

/// Two columns are equal when they hold the same bits (so NaN equals NaN).
impl PartialEq for Column {
    fn eq(&self, o: &Column) -> bool {
        self.ys.len() == o.ys.len()
            && self
                .ys
                .iter()
                .zip(&o.ys)
                .all(|(a, b)| a.to_bits() == b.to_bits())
            && self.levels == o.levels
            && self.bad == o.bad
    }
}

impl Column {
    pub fn len(&self) -> usize {
        self.ys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ys.is_empty()
    }

    pub fn values(&self) -> &[f64] {
        &self.ys
    }

    fn blocks(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    pub fn push(&mut self, y: f64) {
        if !y.is_finite() {
            self.bad.push(self.ys.len());
        }
        self.ys.push(y);
        if !self.ys.len().is_multiple_of(BLOCK) {
            return;
        }
        // A block filled: summarise it, then each pair it completes, level by level.
        let mut e = Extent::EMPTY;
        self.ys[self.ys.len() - BLOCK..]
            .iter()
            .for_each(|&y| e.add(y));
        for k in 0.. {
            if self.levels.len() == k {
                self.levels.push(Vec::new());
            }
            let level = &mut self.levels[k];
            level.push(e);
            let n = level.len();
            if n % 2 == 1 {
                break;
            }
            e = level[n - 2];
            e.merge(&level[n - 1]);
        }
    }

    /// Keeps the first `n` values.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.ys.len() {
            return;
        }
        self.ys.truncate(n);
        for (k, level) in self.levels.iter_mut().enumerate() {
            level.truncate((n / BLOCK) >> k);
        }
        while self.bad.last().is_some_and(|&i| i >= n) {
            self.bad.pop();
        }
    }

    /// The extent of the values in `i..j`.
    pub fn extent(&self, i: usize, j: usize) -> Extent {
        let mut e = Extent::EMPTY;
        let mut raw = |from: usize, to: usize| self.ys[from..to].iter().for_each(|&y| e.add(y));
        let (mut lo, mut hi) = (i.div_ceil(BLOCK), (j / BLOCK).min(self.blocks()));
        if lo >= hi {
            raw(i, j);
            return e;
        }
        raw(i, lo * BLOCK);
        raw(hi * BLOCK, j);
        // Whole blocks lo..hi, bottom up: an odd edge is taken at its level, the rest pairs up.
        for level in &self.levels {
            if lo >= hi {
                break;
            }
            if lo % 2 == 1 {
                e.merge(&level[lo]);
                lo += 1;
            }
            if hi % 2 == 1 {
                hi -= 1;
                e.merge(&level[hi]);
            }
            (lo, hi) = (lo / 2, hi / 2);
        }
        e
    }

    /// How many values are NaN or ±Inf.
    pub fn non_finite(&self) -> usize {
        self.bad.len()
    }

    /// The first NaN or ±Inf in `i..j`.
    pub fn first_non_finite(&self, i: usize, j: usize) -> Option<usize> {
        let k = self.bad[self.bad.partition_point(|&b| b < i)..].first()?;
        (*k < j).then_some(*k)
    }

    /// The last value in `i..j` that is plottable on the scale, skipping whole blocks that
    /// hold none.
    pub fn last_plottable(&self, i: usize, j: usize, log: bool) -> Option<usize> {
        let mut k = j;
        while k > i {
            if k.is_multiple_of(BLOCK)
                && k >= i + BLOCK
                && k / BLOCK <= self.blocks()
                && self.levels[0][k / BLOCK - 1].on_scale(log).is_none()
            {
                k -= BLOCK;
                continue;
            }
            k -= 1;
            if plottable(self.ys[k], log) {
                return Some(k);
            }
        }
        None
    }

    /// Reads the values and finest summaries that ranges starting at `starts` will read, in
    /// loads that do not wait for one another. A long run's values lie far apart in memory;
    /// read one range at a time, each edge waits for its own cache (and TLB) miss, while read
    /// here the misses overlap and the queries that follow find the data in cache.
    pub fn prefetch(&self, starts: &[usize]) {
        let mut sink = 0.0;
        for &i in starts.iter().filter(|&&i| i < self.ys.len()) {
            sink += self.ys[i];
            if let Some(e) = self.levels.first().and_then(|l| l.get(i / BLOCK)) {
                sink += e.max;
            }
        }
        std::hint::black_box(sink);
    }
}

/// The debiased EMA of the plottable values: `acc = w·acc + (1 − w)·v`, shown as
/// `acc / (1 − w^n)` after n plottable values, with v = y, or log10 y on the log scale.
#[derive(Clone, Debug, PartialEq)]
pub struct Ema {
    pub weight: f64,
    pub log: bool,
    acc: f64,
    bias: f64,
}

impl Ema {
    pub fn new(weight: f64, log: bool) -> Ema {
        Ema {
            weight,
            log,
            acc: 0.0,
            bias: 1.0,
        }
    }

    /// The average after `y`, or NaN where `y` is not plottable (and leaves it unchanged).
    pub fn next(&mut self, y: f64) -> f64 {
        if !plottable(y, self.log) {
            return f64::NAN;
        }
        let v = if self.log { y.log10() } else { y };
        self.acc = self.weight * self.acc + (1.0 - self.weight) * v;
        self.bias *= self.weight;
        self.acc / (1.0 - self.bias)
    }

    /// The average at each of `ys`, as a column, and the average's state after them.
    pub fn over(weight: f64, log: bool, ys: &[f64]) -> (Ema, Column) {
        let mut ema = Ema::new(weight, log);
        let mut c = Column::default();
        ys.iter().for_each(|&y| c.push(ema.next(y)));
        (ema, c)
    }
}

/// A series of values (NaN and ±Inf included), and its smoothed column when it has one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Values {
    raw: Column,
    smooth: Option<(Ema, Column)>,
}

impl Values {
    pub fn from_slice(ys: &[f64]) -> Values {
        let mut v = Values::default();
        ys.iter().for_each(|&y| v.push(y));
        v
    }

    pub fn raw(&self) -> &Column {
        &self.raw
    }

    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub fn push(&mut self, y: f64) {
        self.raw.push(y);
        if let Some((ema, column)) = &mut self.smooth {
            column.push(ema.next(y));
        }
    }

    /// Keeps the first `n` values (a resumed run re-logs the steps after its checkpoint).
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len() {
            return;
        }
        self.raw.truncate(n);
        // The average's state at n is not kept, so it is computed again (resumes are rare).
        if let Some((w, log)) = self.smoothing() {
            self.smooth = None;
            self.set_smoothing(w, log);
        }
    }

    /// Keeps the smoothed column for `weight` (0: none) on the linear or the log scale,
    /// computing it when it changes.
    pub fn set_smoothing(&mut self, weight: f64, log: bool) {
        if weight <= 0.0 {
            self.smooth = None;
        } else if self.smoothed(weight, log).is_none() {
            self.smooth = Some(Ema::over(weight, log, self.raw.values()));
        }
    }

    /// The (weight, log scale) of the smoothed column kept, if any.
    pub fn smoothing(&self) -> Option<(f64, bool)> {
        self.smooth.as_ref().map(|(e, _)| (e.weight, e.log))
    }

    /// The smoothed column, if it is kept for this weight and scale.
    pub fn smoothed(&self, weight: f64, log: bool) -> Option<&Column> {
        self.smooth
            .as_ref()
            .filter(|(e, _)| e.weight == weight && e.log == log)
            .map(|(_, c)| c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A series with NaNs, infinities, zeros and negatives, long enough for several levels.
    fn awkward(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| match i % 97 {
                13 => f64::NAN,
                29 => f64::INFINITY,
                41 => 0.0,
                _ => ((i * 7919) % 1000) as f64 / 100.0 - 2.0,
            })
            .collect()
    }

    #[test]
    fn extents_of_any_range_match_a_raw_scan() {
        let ys = awkward(1000);
        let c = Values::from_slice(&ys);
        let c = c.raw();
        for (i, j) in [
            (0, 1000),
            (0, 1),
            (3, 17),
            (16, 32),
            (15, 33),
            (100, 999),
            (500, 500),
        ] {
            let mut want = Extent::EMPTY;
            ys[i..j].iter().for_each(|&y| want.add(y));
            assert_eq!(c.extent(i, j), want, "{i}..{j}");
        }
        assert_eq!(c.non_finite(), ys.iter().filter(|y| !y.is_finite()).count());
        assert_eq!(c.first_non_finite(14, 100), Some(29));
        assert_eq!(c.first_non_finite(30, 200), Some(97 + 13));
        assert_eq!(c.first_non_finite(30, 40), None);
    }

    #[test]
    fn the_smoothed_column_follows_new_values_and_changes_of_smoothing() {
        let ys = awkward(500);
        let mut v = Values::from_slice(&ys[..300]);
        v.set_smoothing(0.9, true);
        ys[300..].iter().for_each(|&y| v.push(y));
        assert_eq!(v.smoothed(0.9, true), Some(&Ema::over(0.9, true, &ys).1));
        assert_eq!(v.smoothed(0.9, false), None);
        v.set_smoothing(0.6, false);
        assert_eq!(v.smoothed(0.6, false), Some(&Ema::over(0.6, false, &ys).1));
        v.set_smoothing(0.0, false);
        assert_eq!(v.smoothed(0.6, false), None);
    }

    #[test]
    fn truncating_then_growing_equals_building_afresh() {
        let ys = awkward(600);
        let mut v = Values::from_slice(&ys);
        v.set_smoothing(0.99, false);
        v.truncate(333);
        let resumed: Vec<f64> = ys[..333].iter().map(|y| y + 0.25).collect();
        resumed.iter().for_each(|&y| v.push(y));
        let mut want_ys = ys[..333].to_vec();
        want_ys.extend(&resumed);
        let mut want = Values::from_slice(&want_ys);
        want.set_smoothing(0.99, false);
        assert_eq!(v, want);
    }

    #[test]
    fn the_last_plottable_value_skips_what_the_scale_cannot_draw() {
        let mut ys = vec![1.0; 100];
        ys[99] = f64::NAN;
        for y in &mut ys[40..99] {
            *y = 0.0;
        }
        let v = Values::from_slice(&ys);
        assert_eq!(v.raw().last_plottable(0, 100, false), Some(98));
        assert_eq!(v.raw().last_plottable(0, 100, true), Some(39));
        assert_eq!(v.raw().last_plottable(40, 100, true), None);
    }
}
