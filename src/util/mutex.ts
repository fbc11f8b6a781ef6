/** Runs async sections one at a time, in the order they asked. */
export class Mutex {
  #tail: Promise<unknown> = Promise.resolve()

  run<T>(section: () => Promise<T> | T): Promise<T> {
    const result = this.#tail.then(section, section)
    this.#tail = result.catch(() => undefined)
    return result
  }
}
