package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/internal/query"
)

const orderColumns = `accession, placer_order_number, filler_order_number, patient_id, patient_name,
	patient_sex, patient_birth_date, priority, ordering_provider, location, procedure_code,
	procedure_text, reason, status, message_id, channel, ordered_at, updated_at, patient_id_authority, patient_class`

func orderValues(o store.Order) []any {
	var ordered any
	if !o.OrderedAt.IsZero() {
		ordered = query.Micros(o.OrderedAt)
	}
	return []any{o.Accession, o.PlacerOrderNumber, o.FillerOrderNumber, o.PatientID, o.PatientName,
		o.PatientSex, o.PatientBirthDate, o.Priority, o.OrderingProvider, o.Location, o.ProcedureCode,
		o.ProcedureText, o.Reason, o.Status, o.MessageID, o.Channel, ordered, query.Micros(o.UpdatedAt),
		o.PatientIDAuthority, o.PatientClass}
}

func scanOrder(row scanner) (store.Order, error) {
	var o store.Order
	var ordered sql.NullInt64
	var updated int64
	err := row.Scan(&o.Accession, &o.PlacerOrderNumber, &o.FillerOrderNumber, &o.PatientID, &o.PatientName,
		&o.PatientSex, &o.PatientBirthDate, &o.Priority, &o.OrderingProvider, &o.Location, &o.ProcedureCode,
		&o.ProcedureText, &o.Reason, &o.Status, &o.MessageID, &o.Channel, &ordered, &updated,
		&o.PatientIDAuthority, &o.PatientClass)
	if err != nil {
		return o, err
	}
	if ordered.Valid {
		o.OrderedAt = query.FromMicros(ordered.Int64)
	}
	o.UpdatedAt = query.FromMicros(updated)
	return o, nil
}

// PutOrder implements store.Store. The merge happens in Go (query.MergeOrder) inside the
// write transaction; SQLite has one writer, so nothing can change the row in between.
func (s *Store) PutOrder(ctx context.Context, o store.Order) error {
	return wrap("put order", s.putOrders(ctx, []store.Order{o}))
}

// PutOrders implements store.Store.
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
	return s.write(ctx, func(tx *sql.Tx) error {
		for _, o := range os {
			if err := putOrderTx(ctx, tx, o); err != nil {
				return err
			}
		}
		return nil
	})
}

func putOrderTx(ctx context.Context, tx *sql.Tx, o store.Order) error {
	old, err := scanOrder(tx.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE accession = ?`, o.Accession))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO orders (`+orderColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, orderValues(o)...); err != nil {
			return fmt.Errorf("order %s: %w", o.Accession, err)
		}
	case err != nil:
		return fmt.Errorf("order %s: %w", o.Accession, err)
	default:
		if merged, changed := query.MergeOrder(old, o); changed {
			v := orderValues(merged)
			if _, err := tx.ExecContext(ctx, `UPDATE orders SET placer_order_number = ?, filler_order_number = ?,
				patient_id = ?, patient_name = ?, patient_sex = ?, patient_birth_date = ?, priority = ?,
				ordering_provider = ?, location = ?, procedure_code = ?, procedure_text = ?, reason = ?,
				status = ?, message_id = ?, channel = ?, ordered_at = ?, updated_at = ?,
				patient_id_authority = ?, patient_class = ?
				WHERE accession = ?`, append(v[1:], v[0])...); err != nil {
				return fmt.Errorf("order %s: %w", o.Accession, err)
			}
		}
	}
	if o.MessageID == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO order_messages (accession, message_id, channel, at)
		VALUES (?, ?, ?, ?) ON CONFLICT (accession, message_id) DO NOTHING`,
		o.Accession, o.MessageID, o.Channel, query.Micros(o.UpdatedAt)); err != nil {
		return fmt.Errorf("order %s history: %w", o.Accession, err)
	}
	return nil
}

// Order implements store.Store.
func (s *Store) Order(ctx context.Context, accession string) (store.Order, error) {
	return s.orderWhere(ctx, "order", `accession = ?`, accession)
}

// OrderByNumber implements store.Store.
func (s *Store) OrderByNumber(ctx context.Context, n string) (store.Order, error) {
	if n == "" {
		return store.Order{}, wrap("order by number", fmt.Errorf("empty order number: %w", store.ErrNotFound))
	}
	return s.orderWhere(ctx, "order by number",
		`accession = (SELECT accession FROM orders WHERE placer_order_number = ? OR filler_order_number = ?
			ORDER BY updated_at DESC, accession LIMIT 1)`, n, n)
}

func (s *Store) orderWhere(ctx context.Context, op, where string, args ...any) (store.Order, error) {
	var o store.Order
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		o, err = scanOrder(tx.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE `+where, args...))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("order %s: %w", args[0], store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT message_id FROM order_messages WHERE accession = ?
			ORDER BY at, message_id`, o.Accession)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			o.MessageIDs = append(o.MessageIDs, id)
		}
		return rows.Err()
	})
	if err != nil {
		return store.Order{}, wrap(op, err)
	}
	return o, nil
}
