package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/internal/query"
)

const orderColumns = `accession, placer_order_number, filler_order_number, patient_id, patient_name,
	patient_sex, patient_birth_date, priority, ordering_provider, location, procedure_code,
	procedure_text, reason, status, message_id, channel, ordered_at, updated_at, patient_id_authority, patient_class`

func orderValues(o store.Order) []any {
	var ordered *time.Time
	if !o.OrderedAt.IsZero() {
		ordered = &o.OrderedAt
	}
	return []any{text(o.Accession), text(o.PlacerOrderNumber), text(o.FillerOrderNumber), text(o.PatientID),
		text(o.PatientName), text(o.PatientSex), text(o.PatientBirthDate), text(o.Priority),
		text(o.OrderingProvider), text(o.Location), text(o.ProcedureCode), text(o.ProcedureText),
		text(o.Reason), text(o.Status), text(o.MessageID), text(o.Channel), ordered, o.UpdatedAt,
		text(o.PatientIDAuthority), text(o.PatientClass)}
}

func scanOrder(row pgx.Row) (store.Order, error) {
	var o store.Order
	var ordered *time.Time
	err := row.Scan(&o.Accession, &o.PlacerOrderNumber, &o.FillerOrderNumber, &o.PatientID, &o.PatientName,
		&o.PatientSex, &o.PatientBirthDate, &o.Priority, &o.OrderingProvider, &o.Location, &o.ProcedureCode,
		&o.ProcedureText, &o.Reason, &o.Status, &o.MessageID, &o.Channel, &ordered, &o.UpdatedAt,
		&o.PatientIDAuthority, &o.PatientClass)
	if err != nil {
		return o, err
	}
	if ordered != nil {
		o.OrderedAt = ordered.UTC()
	}
	o.UpdatedAt = o.UpdatedAt.UTC()
	return o, nil
}

// PutOrder implements store.Store. The row is created if missing and then locked, so
// concurrent writers of one order take turns; the merge happens in Go (query.MergeOrder)
// so that both backends merge identically.
func (s *Store) PutOrder(ctx context.Context, o store.Order) error {
	return wrap("put order", s.putOrders(ctx, []store.Order{o}))
}

// PutOrders implements store.Store. The orders are written in accession order (stable, so
// one accession's orders keep theirs), so that two transactions locking some of the same
// rows take the locks in the same order and never deadlock.
func (s *Store) PutOrders(ctx context.Context, os []store.Order) error {
	return wrap("put orders", s.putOrders(ctx, os))
}

func (s *Store) putOrders(ctx context.Context, in []store.Order) error {
	if len(in) == 0 {
		return nil
	}
	os, err := query.Orders(in, time.Now())
	if err != nil {
		return err
	}
	for i := range os {
		os[i].Accession = text(os[i].Accession)
	}
	slices.SortStableFunc(os, func(a, b store.Order) int { return strings.Compare(a.Accession, b.Accession) })
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, o := range os {
			if err := putOrderTx(ctx, tx, o); err != nil {
				return err
			}
		}
		return nil
	})
}

func putOrderTx(ctx context.Context, tx pgx.Tx, o store.Order) error {
	tag, err := tx.Exec(ctx, `INSERT INTO orders (`+orderColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
		ON CONFLICT (accession) DO NOTHING`, orderValues(o)...)
	if err != nil {
		return fmt.Errorf("order %s: %w", o.Accession, err)
	}
	if tag.RowsAffected() == 0 {
		old, err := scanOrder(tx.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE accession = $1 FOR UPDATE`, o.Accession))
		if err != nil {
			return fmt.Errorf("order %s: %w", o.Accession, err)
		}
		if merged, changed := query.MergeOrder(old, o); changed {
			if _, err := tx.Exec(ctx, `UPDATE orders SET placer_order_number = $2, filler_order_number = $3,
				patient_id = $4, patient_name = $5, patient_sex = $6, patient_birth_date = $7, priority = $8,
				ordering_provider = $9, location = $10, procedure_code = $11, procedure_text = $12, reason = $13,
				status = $14, message_id = $15, channel = $16, ordered_at = $17, updated_at = $18,
				patient_id_authority = $19, patient_class = $20
				WHERE accession = $1`, orderValues(merged)...); err != nil {
				return fmt.Errorf("order %s: %w", o.Accession, err)
			}
		}
	}
	if o.MessageID == "" {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO order_messages (accession, message_id, channel, at)
		VALUES ($1, $2, $3, $4) ON CONFLICT (accession, message_id) DO NOTHING`,
		o.Accession, text(o.MessageID), text(o.Channel), o.UpdatedAt); err != nil {
		return fmt.Errorf("order %s history: %w", o.Accession, err)
	}
	return nil
}

// Order implements store.Store.
func (s *Store) Order(ctx context.Context, accession string) (store.Order, error) {
	return s.orderWhere(ctx, "order", `accession = $1`, accession)
}

// OrderByNumber implements store.Store.
func (s *Store) OrderByNumber(ctx context.Context, n string) (store.Order, error) {
	if n == "" {
		return store.Order{}, wrap("order by number", fmt.Errorf("empty order number: %w", store.ErrNotFound))
	}
	return s.orderWhere(ctx, "order by number",
		`accession = (SELECT accession FROM orders WHERE placer_order_number = $1 OR filler_order_number = $1
			ORDER BY updated_at DESC, accession LIMIT 1)`, n)
}

func (s *Store) orderWhere(ctx context.Context, op, where string, arg string) (store.Order, error) {
	var o store.Order
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var err error
		o, err = scanOrder(tx.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE `+where, text(arg)))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("order %s: %w", arg, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT message_id FROM order_messages WHERE accession = $1
			ORDER BY at, message_id`, o.Accession)
		if err != nil {
			return err
		}
		if o.MessageIDs, err = pgx.CollectRows(rows, pgx.RowTo[string]); len(o.MessageIDs) == 0 {
			o.MessageIDs = nil
		}
		return err
	})
	if err != nil {
		return store.Order{}, wrap(op, err)
	}
	return o, nil
}
