import uploadtask from '@system.uploadtask'

console.log("require gives the same module: " + (require("@system.uploadtask") === uploadtask))
let removedCalls = 0
let keptLast = -1
const task = uploadtask.uploadFile({
  url: "RECEIVER/up",
  filePath: "internal://mass/big.bin",
  name: "file",
  header: { "X-Token": "t" },
  formData: { user: "42" },
  timeout: 30000,
  success(res) {
    console.log("success keys: " + Object.keys(res).sort().join(","))
    console.log("statusCode: " + res.statusCode)
    const body = JSON.parse(res.data)
    console.log("field: " + body.fields[0].name + "=" + body.fields[0].value)
    console.log("size: " + body.files[0].size)
    console.log("content-type: " + res.headers["content-type"])
    throw new Error("thrown in success")
  },
  fail(data, code) {
    console.log("unexpected fail " + code + " " + data)
  },
  complete() {
    console.log("complete ran after the throw")
    console.log("removed listener calls: " + removedCalls)
    console.log("kept listener reached 100: " + (keptLast === 100))
  },
})
function removed(res) {
  removedCalls++
}
task.onProgressUpdate(removed)
task.onProgressUpdate((res) => {
  keptLast = res.progress
})
task.offProgressUpdate(removed)

// offProgressUpdate() removes every listener.
let allCalls = 0
const second = uploadtask.uploadFile({
  url: "RECEIVER/up",
  filePath: "internal://mass/big.bin",
  name: "file",
  complete: () => console.log("second upload complete, its listeners ran " + allCalls + " times"),
})
second.onProgressUpdate(() => allCalls++)
second.onProgressUpdate(() => allCalls++)
second.offProgressUpdate()

// Documented fail codes.
uploadtask.uploadFile({ url: "", filePath: "internal://mass/big.bin", name: "f", fail: (d, c) => console.log("no url: " + c) })
uploadtask.uploadFile({ url: "RECEIVER/up", filePath: "internal://mass/none.bin", name: "f", fail: (d, c) => console.log("no file: " + c) })

const never = setTimeout(() => console.log("a cleared timer ran"), 10)
clearTimeout(never)
setTimeout((a, b) => console.log("timer with arguments: " + a + b), 5, "x", "y")
