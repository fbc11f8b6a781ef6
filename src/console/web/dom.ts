/**
 * A small element builder: every node is made with createElement and every text
 * with a text node, never from markup, so nothing the API returns can become
 * script (and the page's Trusted Types policy allows no HTML sinks at all).
 */

export type Child = Node | string | number | null | undefined | false | Child[]
export type Attrs = Record<string, string | number | boolean | null | undefined | ((event: any) => void)>

function apply(element: Element, attrs: Attrs, children: Child[]): void {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue
    if (typeof value === 'function') element.addEventListener(name.slice(2), value)
    else element.setAttribute(name, value === true ? '' : String(value))
  }
  append(element, children)
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue
    if (Array.isArray(child)) append(parent, child)
    else parent.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)))
  }
}

/** An HTML element: h('button', { type: 'button', onclick: go }, 'Rotate'). */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag)
  apply(element, attrs, children)
  return element
}

const SVG_NS = 'http://www.w3.org/2000/svg'

/** An SVG element. */
export function s<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG_NS, tag)
  apply(element, attrs, children)
  return element
}

/** Replaces every child of `parent`. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren()
  append(parent, children)
}

let ids = 0
/** A unique id for label/aria-describedby pairs. */
export const uid = (prefix: string): string => `${prefix}-${++ids}`
