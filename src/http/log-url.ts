/**
 * The request URL as logged: the path, and the names of query parameters with their
 * values replaced. A client that puts its token in the query string by mistake
 * (`?access_token=signet_...`) must not get it written to the logs.
 */
export function loggableUrl(url: string): string {
  const mark = url.indexOf('?')
  if (mark < 0) return url
  const names = url
    .slice(mark + 1)
    .split('&')
    .filter((pair) => pair.length > 0)
    .map((pair) => `${pair.split('=', 1)[0]!.slice(0, 64)}=_`)
  return `${url.slice(0, mark)}?${names.join('&')}`
}
