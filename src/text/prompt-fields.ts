/** How prompt lists are typed into form fields (the API's multipart fields and the web page). */

/** Category names separated by commas or line breaks. */
export function splitVocabulary(text: string): string[] {
  return text
    .split(/[,\n\r]/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Sentences one per line (a sentence may hold commas). */
export function splitSentences(text: string): string[] {
  return text
    .split(/[\n\r]/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
