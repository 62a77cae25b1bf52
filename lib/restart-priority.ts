/** The service level of a VM: the order in which VMs are placed and restarted after a failure. */
export enum RestartPriority {
  HIGH = 'high',
  MEDIUM = 'medium',
  LOW = 'low',
  /** Never restarted on another host; admission control does not reserve room for it. */
  NONE = 'none',
}
