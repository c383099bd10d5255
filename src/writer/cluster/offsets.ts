/**
 * Applied-offset bookkeeping across the per-node writers of a cluster target.
 *
 * Every unit sent to a node gets that node's next sequence number. An offset mark records, for
 * every node, the last sequence number submitted to it when the mark was made: the offset is
 * applied once every node has applied up to its recorded number. Marks complete in order.
 * A command redirected (MOVED/ASK) from node A's unit s to node B's unit t makes every pending
 * mark that waited on A's unit s also wait on B's unit t.
 */

interface Mark {
  offset: number;
  need: number[];
}

export class ClusterOffsets {
  /** Per node: last sequence number submitted. */
  private readonly submitted: number[] = [];
  /** Per node: last sequence number applied. */
  private readonly applied: number[] = [];
  private marks: Mark[] = [];
  private head = 0;

  addNode(): number {
    this.submitted.push(0);
    this.applied.push(0);
    return this.submitted.length - 1;
  }

  /** Next sequence number for a unit sent to `node`. */
  nextSeq(node: number): number {
    return ++this.submitted[node]!;
  }

  /**
   * Marks `offset`: applied once everything submitted so far, on every node, is applied.
   * Returns the offsets that are applied already (this one, when nothing is outstanding).
   */
  mark(offset: number): number[] {
    this.marks.push({ offset, need: this.submitted.slice() });
    return this.collect();
  }

  /** Pending marks waiting for (fromNode, fromSeq) now also wait for (toNode, toSeq). */
  redirect(fromNode: number, fromSeq: number, toNode: number, toSeq: number): void {
    for (let i = this.head; i < this.marks.length; i++) {
      const need = this.marks[i]!.need;
      if ((need[fromNode] ?? 0) >= fromSeq && (need[toNode] ?? 0) < toSeq) need[toNode] = toSeq;
    }
  }

  /** Node `node` applied its unit `seq`; returns the offsets that became applied, in order. */
  onApplied(node: number, seq: number): number[] {
    this.applied[node] = seq;
    return this.collect();
  }

  private collect(): number[] {
    const done: number[] = [];
    while (this.head < this.marks.length) {
      const m = this.marks[this.head]!;
      let ready = true;
      for (let n = 0; n < m.need.length; n++) {
        if (this.applied[n]! < m.need[n]!) {
          ready = false;
          break;
        }
      }
      if (!ready) break;
      done.push(m.offset);
      this.marks[this.head++] = undefined as unknown as Mark;
    }
    if (this.head >= 1024 && this.head * 2 >= this.marks.length) {
      this.marks = this.marks.slice(this.head);
      this.head = 0;
    }
    return done;
  }

  /** Marks not yet applied. */
  get pending(): number {
    return this.marks.length - this.head;
  }
}
