package ich

// PickSeries exposes the series choice to the external tests.
var PickSeries = pickSeries
