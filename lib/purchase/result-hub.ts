import { Observable, Subject } from 'rxjs';
import type { ResultRecord } from './results';

/**
 * Wakes the clients waiting on a message (long-poll, SSE): result transitions arrive as broker
 * events and are routed to that message's watchers only, so a crowd of waiters costs nothing per event.
 */
export class ResultHub {
  private readonly subjects = new Map<string, Subject<ResultRecord>>();

  watch(messageId: string): Observable<ResultRecord> {
    return new Observable<ResultRecord>((subscriber) => {
      let subject = this.subjects.get(messageId);
      if (!subject) {
        subject = new Subject<ResultRecord>();
        this.subjects.set(messageId, subject);
      }
      const inner = subject.subscribe(subscriber);
      return () => {
        inner.unsubscribe();
        if (subject && !subject.observed) this.subjects.delete(messageId);
      };
    });
  }

  emit(record: ResultRecord): void {
    this.subjects.get(record.messageId)?.next(record);
  }
}
