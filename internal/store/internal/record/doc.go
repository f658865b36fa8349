// Package record holds what the store backends share: the stored encoding
// of a subscription, argument checks and ordering rules, so both backends store
// and return exactly the same values.
package record
