// Package dataset keeps a recorded incident in one small file that ships with the
// repository: the spans the services sent and the raw kernel events the real agent
// recorded, in the event wire schema (pipeline/event/eventpb). Import feeds them through
// the same engine as a live recording (correlator, event log), so the workstation opens
// an imported incident exactly as it would a fresh one.
package dataset
