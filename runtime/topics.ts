/** The topic scheme of DESIGN.md, under a configurable prefix (default `outpost`). */
export class Topics {
  private readonly prefixHead: string;
  private readonly datapointHead: string;

  constructor(readonly prefix: string) {
    this.prefixHead = `${prefix}/`;
    this.datapointHead = `${prefix}/dp/`;
  }

  value(id: string): string {
    return `${this.prefix}/dp/${id}/value`;
  }
  set(id: string): string {
    return `${this.prefix}/dp/${id}/set`;
  }
  setResult(id: string): string {
    return `${this.prefix}/dp/${id}/set/result`;
  }
  schedule(id: string): string {
    return `${this.prefix}/dp/${id}/schedule`;
  }
  meta(id: string): string {
    return `${this.prefix}/dp/${id}/meta`;
  }
  /** Where a refused publication is reported, so nothing is dropped silently. */
  error(id: string): string {
    return `${this.prefix}/dp/${id}/error`;
  }
  adapterStatus(id: string): string {
    return `${this.prefix}/adapter/${id}/status`;
  }
  gatewayStatus(): string {
    return `${this.prefix}/gateway/status`;
  }
  gatewayRejected(): string {
    return `${this.prefix}/gateway/rejected`;
  }
  gatewayStorage(): string {
    return `${this.prefix}/gateway/storage`;
  }

  /** Splits `<prefix>/dp/<id>/<kind>[/...]`; undefined for any other topic. */
  parseDatapointTopic(topic: string): { id: string; kind: string } | undefined {
    const head = this.datapointHead;
    if (!topic.startsWith(head)) return undefined;
    const slash = topic.indexOf('/', head.length);
    if (slash < 0) return { id: topic.slice(head.length), kind: '' };
    return { id: topic.slice(head.length, slash), kind: topic.slice(slash + 1) };
  }

  isGatewayOwned(topic: string): boolean {
    return topic.startsWith(this.prefixHead);
  }
}

/** MQTT topic filter match (`+` one level, `#` the rest), per MQTT 3.1.1 §4.7. */
export function topicMatches(filter: string, topic: string): string[] | undefined {
  const f = filter.split('/');
  const t = topic.split('/');
  const captured: string[] = [];
  for (let i = 0; i < f.length; i++) {
    const part = f[i];
    if (part === '#') {
      captured.push(t.slice(i).join('/'));
      return captured;
    }
    if (i >= t.length) return undefined;
    if (part === '+') captured.push(t[i]!);
    else if (part !== t[i]) return undefined;
  }
  return f.length === t.length ? captured : undefined;
}
