/** The topic scheme of DESIGN.md, under a configurable prefix (default `outpost`). */
export class Topics {
  constructor(readonly prefix: string) {}

  value(id: string): string { return `${this.prefix}/dp/${id}/value`; }
  set(id: string): string { return `${this.prefix}/dp/${id}/set`; }
  setResult(id: string): string { return `${this.prefix}/dp/${id}/set/result`; }
  schedule(id: string): string { return `${this.prefix}/dp/${id}/schedule`; }
  meta(id: string): string { return `${this.prefix}/dp/${id}/meta`; }
  /** Where a refused publication is reported, so nothing is dropped silently. */
  error(id: string): string { return `${this.prefix}/dp/${id}/error`; }
  adapterStatus(id: string): string { return `${this.prefix}/adapter/${id}/status`; }
  gatewayStatus(): string { return `${this.prefix}/gateway/status`; }
  gatewayRejected(): string { return `${this.prefix}/gateway/rejected`; }

  /** Splits `<prefix>/dp/<id>/<kind>[/...]`; undefined for any other topic. */
  parseDatapointTopic(topic: string): { id: string; kind: string } | undefined {
    const head = `${this.prefix}/dp/`;
    if (!topic.startsWith(head)) return undefined;
    const rest = topic.slice(head.length).split('/');
    if (rest.length < 2) return { id: rest[0] ?? '', kind: '' };
    return { id: rest[0]!, kind: rest.slice(1).join('/') };
  }

  isGatewayOwned(topic: string): boolean {
    return topic.startsWith(`${this.prefix}/`);
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
