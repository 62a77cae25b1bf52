/** How a cluster chooses among hosts that fit. */
export enum PlacementPolicy {
  /** Even load across hosts. */
  SPREAD = 'spread',
  /** As few hosts busy as possible, so the rest can go to standby. */
  PACK = 'pack',
}
