package mllp

// LiveConnections counts the destination's open connections whose peer has not closed
// them, waiting for sends in progress. Tests use it to wait until the destination has
// noticed a peer's close.
func LiveConnections(d *Destination) int {
	n := 0
	var held []*slot
	for range d.cfg.Connections {
		s := <-d.slots
		held = append(held, s)
		if s.client != nil && s.client.Alive() {
			n++
		}
	}
	for _, s := range held {
		d.slots <- s
	}
	return n
}
