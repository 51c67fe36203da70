package restorer

const noFollow = 0
