package pgstore

// ActiveRows is the predicate of the queries of sagas in flight.
var ActiveRows = activeRows
