//! PromQL's functions and aggregations as Prometheus 2.42 has them: one table (Prometheus's
//! `FunctionCalls`) that the parser's check, the evaluator's dispatch and the selection
//! hints share, so that what a function is decides downsampling aggregates, `skip_chunks`
//! and counter-aware deduplication in one place.

/// Declares an enum of names with its table: `from_name` and `name`.
macro_rules! named {
    ($(#[$doc:meta])* $enum:ident { $($variant:ident => $name:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $enum {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl $enum {
            /// Every one, in the table's order.
            pub const ALL: &'static [$enum] = &[$($enum::$variant,)*];

            /// The one called `name` in PromQL.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($name => Some($enum::$variant),)*
                    _ => None,
                }
            }

            /// Its name in PromQL.
            pub fn name(self) -> &'static str {
                match self {
                    $($enum::$variant => $name,)*
                }
            }
        }
    };
}

named! {
    /// A function of Prometheus 2.42's PromQL.
    Function {
    Abs => "abs",
    Absent => "absent",
    AbsentOverTime => "absent_over_time",
    Acos => "acos",
    Acosh => "acosh",
    Asin => "asin",
    Asinh => "asinh",
    Atan => "atan",
    Atanh => "atanh",
    AvgOverTime => "avg_over_time",
    Ceil => "ceil",
    Changes => "changes",
    Clamp => "clamp",
    ClampMax => "clamp_max",
    ClampMin => "clamp_min",
    Cos => "cos",
    Cosh => "cosh",
    CountOverTime => "count_over_time",
    DaysInMonth => "days_in_month",
    DayOfMonth => "day_of_month",
    DayOfWeek => "day_of_week",
    DayOfYear => "day_of_year",
    Deg => "deg",
    Delta => "delta",
    Deriv => "deriv",
    Exp => "exp",
    Floor => "floor",
    HistogramCount => "histogram_count",
    HistogramSum => "histogram_sum",
    HistogramFraction => "histogram_fraction",
    HistogramQuantile => "histogram_quantile",
    HoltWinters => "holt_winters",
    Hour => "hour",
    Idelta => "idelta",
    Increase => "increase",
    Irate => "irate",
    LabelReplace => "label_replace",
    LabelJoin => "label_join",
    LastOverTime => "last_over_time",
    Ln => "ln",
    Log10 => "log10",
    Log2 => "log2",
    MaxOverTime => "max_over_time",
    MinOverTime => "min_over_time",
    Minute => "minute",
    Month => "month",
    Pi => "pi",
    PredictLinear => "predict_linear",
    PresentOverTime => "present_over_time",
    QuantileOverTime => "quantile_over_time",
    Rad => "rad",
    Rate => "rate",
    Resets => "resets",
    Round => "round",
    Scalar => "scalar",
    Sgn => "sgn",
    Sin => "sin",
    Sinh => "sinh",
    Sort => "sort",
    SortDesc => "sort_desc",
    Sqrt => "sqrt",
    StddevOverTime => "stddev_over_time",
    StdvarOverTime => "stdvar_over_time",
    SumOverTime => "sum_over_time",
    Tan => "tan",
    Tanh => "tanh",
    Time => "time",
    Timestamp => "timestamp",
    Vector => "vector",
    Year => "year",
    }
}

named! {
    /// An aggregation operator.
    Aggregation {
    Sum => "sum",
    Avg => "avg",
    Count => "count",
    Min => "min",
    Max => "max",
    Group => "group",
    Stddev => "stddev",
    Stdvar => "stdvar",
    Topk => "topk",
    Bottomk => "bottomk",
    CountValues => "count_values",
    Quantile => "quantile",
    }
}

/// The name `promql-parser` (Prometheus 3) knows 2.42's `holt_winters` by; the parser here
/// reads 2.42's name into it.
pub(crate) const HOLT_WINTERS_3X: &str = "double_exponential_smoothing";

impl Function {
    /// The function a parsed call names (2.42's `holt_winters` arrives under its 3.x name).
    pub fn of_call(name: &str) -> Option<Self> {
        if name == HOLT_WINTERS_3X {
            return Some(Function::HoltWinters);
        }
        Function::from_name(name)
    }

    /// Whether it reads its samples as a counter: replicas' counters are deduplicated with
    /// resets adjusted, and downsampled blocks answer with their counter aggregate (Thanos's
    /// `isCounter`).
    pub fn is_counter(self) -> bool {
        matches!(
            self,
            Function::Rate | Function::Increase | Function::Irate | Function::Resets
        )
    }
}

/// What encloses a selection (Prometheus's `SelectHints.Func`): the nearest function or
/// aggregation around the selector, or the series API, which needs labels only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SelectFunc {
    /// A function call.
    Call(Function),
    /// An aggregation.
    Aggregate(Aggregation),
    /// `/api/v1/series`: no samples are needed (`"series"`).
    Series,
}

impl SelectFunc {
    /// The name Prometheus puts in its hints.
    pub fn name(self) -> &'static str {
        match self {
            SelectFunc::Call(f) => f.name(),
            SelectFunc::Aggregate(a) => a.name(),
            SelectFunc::Series => "series",
        }
    }

    /// The function, if it is one.
    pub fn function(self) -> Option<Function> {
        match self {
            SelectFunc::Call(f) => Some(f),
            _ => None,
        }
    }

    /// Whether the selection is read as a counter (see [`Function::is_counter`]).
    pub fn is_counter(self) -> bool {
        self.function().is_some_and(Function::is_counter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_go_both_ways() {
        for f in Function::ALL {
            assert_eq!(Function::from_name(f.name()), Some(*f));
        }
        for a in Aggregation::ALL {
            assert_eq!(Aggregation::from_name(a.name()), Some(*a));
        }
        assert_eq!(Function::ALL.len(), 70);
        assert_eq!(
            Function::of_call(HOLT_WINTERS_3X),
            Some(Function::HoltWinters)
        );
        assert_eq!(
            Function::from_name(HOLT_WINTERS_3X),
            None,
            "not a 2.42 name"
        );
        let counters: Vec<&str> = Function::ALL
            .iter()
            .filter(|f| f.is_counter())
            .map(|f| f.name())
            .collect();
        assert_eq!(counters, ["increase", "irate", "rate", "resets"]);
    }
}
