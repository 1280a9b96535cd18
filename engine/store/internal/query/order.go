package query

import (
	"fmt"
	"strings"
	"time"

	"github.com/osprey-health/osprey/engine/store"
)

// Orders is Order for a batch, on copies: the first order that fails fails the batch.
func Orders(in []store.Order, now time.Time) ([]store.Order, error) {
	out := make([]store.Order, len(in))
	for i, o := range in {
		if err := Order(&o, now); err != nil {
			return nil, err
		}
		out[i] = o
	}
	return out, nil
}

// Order normalises an order for writing: the accession is trimmed and required, times are
// kept as the store keeps them, and a zero UpdatedAt becomes now.
func Order(o *store.Order, now time.Time) error {
	o.Accession = strings.TrimSpace(o.Accession)
	if o.Accession == "" {
		return fmt.Errorf("order without accession number: %w", store.ErrInvalidOrder)
	}
	if o.UpdatedAt.IsZero() {
		o.UpdatedAt = now
	}
	o.UpdatedAt = Time(o.UpdatedAt)
	if !o.OrderedAt.IsZero() {
		o.OrderedAt = Time(o.OrderedAt)
	}
	o.MessageIDs = nil
	return nil
}

// MergeOrder applies a later description of an order (next) to the stored one (old), as
// store.Store.PutOrder documents: a non-empty field of next replaces old's, an empty one
// keeps it, OrderedAt keeps the first value known. When next is older than old it changes
// nothing and MergeOrder reports false. Both backends merge with this one function so
// that they agree field by field.
func MergeOrder(old, next store.Order) (store.Order, bool) {
	if next.UpdatedAt.Before(old.UpdatedAt) {
		return old, false
	}
	out := old
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&out.PlacerOrderNumber, next.PlacerOrderNumber},
		{&out.FillerOrderNumber, next.FillerOrderNumber},
		{&out.PatientID, next.PatientID},
		{&out.PatientName, next.PatientName},
		{&out.PatientSex, next.PatientSex},
		{&out.PatientBirthDate, next.PatientBirthDate},
		{&out.PatientIDAuthority, next.PatientIDAuthority},
		{&out.PatientClass, next.PatientClass},
		{&out.Priority, next.Priority},
		{&out.OrderingProvider, next.OrderingProvider},
		{&out.Location, next.Location},
		{&out.ProcedureCode, next.ProcedureCode},
		{&out.ProcedureText, next.ProcedureText},
		{&out.Reason, next.Reason},
		{&out.Status, next.Status},
		{&out.MessageID, next.MessageID},
		{&out.Channel, next.Channel},
	} {
		if f.src != "" {
			*f.dst = f.src
		}
	}
	if out.OrderedAt.IsZero() {
		out.OrderedAt = next.OrderedAt
	}
	out.UpdatedAt = next.UpdatedAt
	return out, true
}
